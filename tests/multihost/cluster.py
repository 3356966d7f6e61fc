"""Three ``trio-pool serve`` processes sharing one PostgreSQL: the harness of the
multi-host tests. Each host has its own data dir and reaches PostgreSQL through its own
``Relay`` (so one host can be cut off); all point at one simulator served by the test, so
the test reads the simulator's counters (token calls, rotations, reuses) directly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs
import trio

from bench.client import Connection, encode_json_request
from trio_pool.testing.relay import Relay
from trio_pool.testing.server import urls
from trio_pool.testing.state import SimState

ROOT = Path(__file__).resolve().parents[2]
KEY = "dGVzdC1rZXktZm9yLXRoZS1tdWx0aS1ob3N0LXRlc3Q="  # 32 bytes, base64
STARTED = re.compile(r"app\.started listen=http://127\.0\.0\.1:(\d+)")


@attrs.define(eq=False)
class Host:
    index: int
    workdir: Path
    relay: Relay
    process: trio.Process | None = None
    port: int = 0
    log_offset: int = 0

    @property
    def log(self) -> Path:
        return self.workdir / "host.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def connection(self) -> Connection:
        return Connection("127.0.0.1", self.port)


@attrs.define(eq=False)
class Cluster:
    root: Path
    sim: SimState
    sim_base: str
    pg_url: str
    nursery: trio.Nursery
    settings: dict[str, Any] = attrs.field(factory=dict)
    hosts: list[Host] = attrs.field(factory=list)

    def _config(self, host: Host) -> str:
        pg = urlsplit(self.pg_url)
        state_url = f"postgresql://postgres@127.0.0.1:{host.relay.port}{pg.path}"
        endpoints = urls(self.sim_base)
        lines = [
            'listen = "127.0.0.1:0"',
            f'pool_dir = "{self.root / "pool"}"',
            'data_dir = "data"',
            f'state_url = "{state_url}"',
            "shutdown_grace_s = 1",
            "upstream_connect_timeout_s = 2",
            "upstream_first_byte_timeout_s = 10",
            "[state]",
            f'host_id = "host{host.index}"',
            "connect_timeout_s = 1",
            *(f"{k} = {json.dumps(v)}" for k, v in self.settings.items()),
        ]
        for provider, values in endpoints.items():
            lines.append(f"[{provider}]")
            lines += [f'{k} = "{v}"' for k, v in values.items()]
        return "\n".join(lines) + "\n"

    async def add_host(self) -> Host:
        relay = Relay("127.0.0.1", urlsplit(self.pg_url).port or 5432)
        await self.nursery.start(relay.serve)
        host = Host(len(self.hosts), self.root / f"host{len(self.hosts)}", relay)
        host.workdir.mkdir()
        (host.workdir / "config.toml").write_text(self._config(host))
        self.hosts.append(host)
        return host

    async def start(self, host: Host, *, fault: str | None = None) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TRIO_POOL_STATE_KEY": KEY}
        env.pop("TRIO_POOL_FAULT", None)
        env.pop("TRIO_POOL_STATE_URL", None)
        if fault:
            env["TRIO_POOL_FAULT"] = fault
        host.log_offset = len(host.log_text())
        with host.log.open("ab") as log:
            host.process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "trio_pool", "serve", "--config", "config.toml"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=host.workdir,
                env=env,
            )
        with trio.fail_after(30):
            while True:
                found = STARTED.search(host.log_text()[host.log_offset :])
                if found:
                    host.port = int(found.group(1))
                    return
                if host.process.returncode is not None:
                    raise AssertionError(f"host{host.index} exited:\n{host.log_text()[-3000:]}")
                await trio.sleep(0.05)

    async def wait_log(self, host: Host, pattern: str, timeout: float = 30) -> None:
        with trio.fail_after(timeout):
            while pattern not in host.log_text()[host.log_offset :]:
                await trio.sleep(0.02)

    async def stop(self, host: Host) -> None:
        process = host.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(10):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()

    async def kill(self, host: Host) -> None:
        assert host.process is not None
        host.process.kill()
        await host.process.wait()

    async def stop_all(self) -> None:
        """At the end of a test: kill what is left (the tests have read what they need)."""
        with trio.CancelScope(shield=True):
            for host in self.hosts:
                if host.process is not None and host.process.returncode is None:
                    os.kill(host.process.pid, signal.SIGCONT)
                    await self.kill(host)


def claude_request(port: int, session: str | None = None) -> bytes:
    headers = [
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", "oauth-2025-04-20"),
        ("authorization", "Bearer placeholder"),
    ]
    if session is not None:
        headers.append(("x-claude-code-session-id", session))
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Say hello."}],
    }
    return encode_json_request("/v1/messages", f"127.0.0.1:{port}", headers, body)


async def health(host: Host) -> dict[str, Any]:
    conn = host.connection()
    try:
        raw = f"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1:{host.port}\r\n\r\n".encode()
        reply = await conn.request(raw)
    finally:
        await conn.aclose()
    document: dict[str, Any] = json.loads(reply.body)
    return document
