"""Real processes: the host-wide refresh lock, and kill -9 during a credential write-back."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path

import trio

from tests.state.write_child import PAD
from trio_pool import clock
from trio_pool.credentials.registry import read_account_file
from trio_pool.credentials.store import write_document_atomic
from trio_pool.state import ops
from trio_pool.state.store import StateStore
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState

ROOT = Path(__file__).resolve().parents[2]
KILLS = 30
LANES = 3


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


async def start(module: str, *args: str) -> trio.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await trio.lowlevel.open_process(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )


class Lines:
    """Lines from a child's stdout."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.buffer = b""

    async def next(self) -> str:
        while b"\n" not in self.buffer:
            chunk = await self.stream.receive_some()
            assert chunk, "the child exited early"
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


async def test_two_processes_racing_to_refresh_call_the_endpoint_once(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """Both processes want to refresh the same single-use token at once: exactly one call
    reaches the token endpoint, and both end with the new token (no needs-re-login)."""
    now = clock.now()
    state = SimState.with_accounts([new_account("codex", "a", now=now)])
    sim_base = await nursery.start(serve_simulator, state)
    await trio.to_thread.run_sync(partial(write_pool, tmp_path / "pool", state, now=now))
    store = await StateStore.open(tmp_path / "data")
    holder = f"{os.getpid()}:test"
    children: list[trio.Process] = []
    try:
        with trio.fail_after(30):
            # Hold the lock ourselves until both children wait on it with the old token.
            assert await store.run(ops.try_lock, "codex/a", holder, clock.now(), 60.0)
            for _ in range(2):
                children.append(
                    await start("tests.state.refresh_child", str(tmp_path), sim_base, "codex/a")
                )
            lines = [Lines(child) for child in children]
            for reader in lines:
                assert await reader.next() == "ready"
            for child in children:
                assert child.stdin is not None
                await child.stdin.send_all(b"go\n")
            await trio.sleep(0.3)  # both reach the lock (the result holds either way)
            assert await store.run(ops.unlock, "codex/a", holder)
            answers = [json.loads(await reader.next()) for reader in lines]
            for child in children:
                assert await child.wait() == 0
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
        await store.aclose()
    sim = state.account("codex/a")
    _, on_disk = read_account_file(tmp_path / "pool" / "codex" / "a.json", "codex")
    assert sim.refreshes == 1
    assert on_disk.access_token == sim.access_token
    assert answers == [{"ok": True, "access": digest(sim.access_token), "state": "ok"}] * 2


def check_after_kill(directory: Path, leftovers: int) -> int:
    """The credential file is one complete version; returns the temp files left so far."""
    path = directory / "a.json"
    document = json.loads(path.read_bytes())
    assert document["pad"] == PAD
    assert document["version"] >= 1
    assert path.stat().st_mode & 0o777 == 0o600
    temps = list(directory.glob(".a.json.*.tmp"))
    assert len(temps) <= leftovers + 1  # at most the one being written when killed
    assert [p.name for p in directory.iterdir() if not p.name.startswith(".")] == ["a.json"]
    return len(temps)


async def kill_loop(directory: Path, kills: int, seed: int) -> None:
    path = directory / "a.json"
    write_document_atomic(path, {"version": 0, "pad": PAD})
    rng = random.Random(seed)
    leftovers = 0
    for _ in range(kills):
        child = await start("tests.state.write_child", str(path))
        assert await Lines(child).next() == "started"
        await trio.sleep(rng.uniform(0.0, 0.01))
        child.send_signal(signal.SIGKILL)
        assert await child.wait() == -signal.SIGKILL
        leftovers = await trio.to_thread.run_sync(check_after_kill, directory, leftovers)


async def test_kill_during_write_back_never_leaves_a_torn_file(tmp_path: Path) -> None:
    """SIGKILL at random moments of a write-back loop (30 kills over 3 files at once): the
    file is always one complete version, mode 0600; each kill leaves at most one temp file."""
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for lane in range(LANES):
                directory = tmp_path / str(lane)
                directory.mkdir()
                nursery.start_soon(kill_loop, directory, KILLS // LANES, lane)
