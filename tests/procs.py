"""Real ``trio-pool serve`` processes for the crash, hang-up and disk-fault tests.

The test process runs the simulator; the child proxy gets a config.toml pointing every
provider at it, listens on 127.0.0.1 port 0 and says where in its ``app.started`` log line.
Its stderr is collected line by line so that tests can wait for a log event and check that
no secret ever reached it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import trio

from trio_pool.testing.server import urls

ROOT = Path(__file__).resolve().parents[1]
STARTED = re.compile(r"app\.started listen=(http://127\.0\.0\.1:(\d+))")


def write_config(workdir: Path, sim_base: str, **settings: Any) -> Path:
    """config.toml for a child proxy in ``workdir`` (pool/ and data/ beside it)."""
    lines = ['listen = "127.0.0.1:0"', 'pool_dir = "pool"', 'data_dir = "data"']
    settings.setdefault("shutdown_grace_s", 2)
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    for provider, section in urls(sim_base).items():
        lines.append(f"[{provider}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in section.items()]
    path = workdir / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def without_dac_override() -> list[str] | None:
    """A command prefix under which file permissions bind this user, or None when none is
    available. As root, CAP_DAC_OVERRIDE ignores a read-only directory: setpriv drops it
    (and DAC_READ_SEARCH) for the child only. As anyone else no prefix is needed."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


class Served:
    """One child proxy: its address, its log lines, its descriptors."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.base = ""
        self.port = 0
        self._changed = trio.Event()
        self._ended = trio.Event()

    async def read_log(self) -> None:
        assert self.process.stderr is not None
        buffer = b""
        try:
            while chunk := await self.process.stderr.receive_some(65536):
                buffer += chunk
                *done, buffer = buffer.split(b"\n")
                self.lines.extend(line.decode("utf-8", "replace") for line in done)
                if done:
                    self._changed.set()
                    self._changed = trio.Event()
        finally:
            self._ended.set()
            self._changed.set()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    async def wait_log(self, pattern: str, *, count: int = 1) -> re.Match[str]:
        """The first log line matching ``pattern`` once ``count`` lines match (callers
        bound the wait with fail_after)."""
        regex = re.compile(pattern)
        while True:
            matches = [m for line in self.lines if (m := regex.search(line))]
            if len(matches) >= count:
                return matches[0]
            if self._ended.is_set():
                raise AssertionError(f"the proxy exited before logging {pattern!r}:\n{self.text}")
            await self._changed.wait()

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.process.pid}/fd"))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    async def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 15 s)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            return await self.process.wait()
        self.process.kill()
        return await self.process.wait()


async def start_serve(
    nursery: trio.Nursery, workdir: Path, *, prefix: list[str] | None = None
) -> Served:
    """``trio-pool serve`` in ``workdir`` (with its config.toml), started and listening.

    Its log reader runs in ``nursery``; stop it with ``await served.stop()``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await trio.lowlevel.open_process(
        [*(prefix or []), sys.executable, "-m", "trio_pool", "serve", "--config", "config.toml"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=workdir,
        env=env,
    )
    served = Served(process)
    nursery.start_soon(served.read_log)
    match = await served.wait_log(STARTED.pattern)
    served.base, served.port = match.group(1), int(match.group(2))
    return served
