"""M4: a pool shared through a user never turns into an open local pool because state.db
cannot be read at start (corrupt, locked by another process, lost): every request gets 503
until the users are known again, and then a key is required, as before."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.proxy.conftest import Env
from tests.proxy.raw_http import send
from trio_pool.auth.directory import Directory
from trio_pool.state.store import StateStore

MESSAGE = b'{"model":"claude-opus-5-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
CLAUDE = {"content-type": "application/json", "anthropic-version": "2023-06-01"}
LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


async def a_pool_shared_through_a_user(data_dir: Path) -> str:
    """No friend code: shared only because ann exists (and a password is set). Ann's key."""
    store = await StateStore.open(data_dir)
    try:
        directory = Directory(store)
        await directory.start()
        _, key = await directory.add_user("ann")
        await directory.set_password("the admin password")
    finally:
        await store.aclose()
    return key


async def answers(env: Env, key: str | None = None) -> dict[str, int]:
    """What a keyless (or keyed) model call, the local admin API and /healthz get."""
    headers = dict(CLAUDE)
    if key is not None:
        headers["x-api-key"] = key
    found = {}
    found["messages"], _ = await send(
        env.base, "POST", "/v1/messages", headers=headers, body=MESSAGE
    )
    found["accounts"], _ = await send(env.base, "GET", "/api/accounts")
    found["healthz"], _ = await send(env.base, "GET", "/healthz")
    return found


async def until_keys_are_needed(env: Env, timeout_s: float = 10) -> None:
    with trio.fail_after(timeout_s):
        while (await answers(env))["messages"] != 401:
            await trio.sleep(0.2)


async def test_a_corrupt_db_at_start_refuses_everything_until_it_is_fixed(
    make_env: Callable[..., Any], tmp_path: Path
) -> None:
    """The audit's (a): the head of state.db overwritten, then a start. 503 everywhere (not
    a keyless 200 and an unsigned local admin); once the file is restored, keys again."""
    data = tmp_path / "data"
    key = await a_pool_shared_through_a_user(data)
    db = data / "state.db"
    good = db.read_bytes()
    db.write_bytes(b"\xff" * 100 + good[100:])
    env = await make_env()
    assert await answers(env) == {"messages": 503, "accounts": 503, "healthz": 503}
    assert await answers(env, key) == {"messages": 503, "accounts": 503, "healthz": 503}
    assert not [target for target in env.state.seen if "messages" in target]
    db.write_bytes(good)
    await until_keys_are_needed(env)
    found = await answers(env, key)
    assert (found["messages"], found["accounts"]) == (200, 401)


async def test_a_db_locked_during_start_is_reopened_once_the_lock_goes(
    make_env: Callable[..., Any], tmp_path: Path
) -> None:
    """The audit's (b): another process holds the write lock while trio-pool starts (its
    open gives up after SQLite's 5 s busy timeout). It refuses every request meanwhile, and
    asks for keys once the lock is released (it used to stay open for good)."""
    data = tmp_path / "data"
    await a_pool_shared_through_a_user(data)
    holder = await trio.lowlevel.open_process(
        [sys.executable, "-c", LOCK, str(data / "state.db")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdin is not None
        with trio.fail_after(10):
            said = b""
            while b"locked" not in said:
                said += await holder.stdout.receive_some(100)
        env = await make_env()
        assert await answers(env) == {"messages": 503, "accounts": 503, "healthz": 503}
        await holder.stdin.aclose()  # the holder rolls back and exits
        with trio.fail_after(10):
            await holder.wait()
    finally:
        if holder.returncode is None:
            holder.kill()
    await until_keys_are_needed(env, timeout_s=15)


@pytest.mark.parametrize("lost", ["deleted", "emptied"])
async def test_a_lost_db_of_a_pool_that_had_users_stays_closed(
    make_env: Callable[..., Any], tmp_path: Path, lost: str, caplog: pytest.LogCaptureFixture
) -> None:
    """data/.users-exist remembers users: a state.db deleted (or replaced by an empty one)
    is not "no users"; the log says how to get out (restore it, or delete the marker)."""
    data = tmp_path / "data"
    await a_pool_shared_through_a_user(data)
    assert (data / ".users-exist").exists()
    for side in data.glob("state.db*"):
        side.unlink()
    if lost == "emptied":
        store = await StateStore.open(data)
        await store.aclose()
    env = await make_env()
    assert await answers(env) == {"messages": 503, "accounts": 503, "healthz": 503}
    assert ".users-exist" in caplog.text or "cannot be opened" in caplog.text
    (data / ".users-exist").unlink()
    with trio.fail_after(10):
        while (await answers(env))["messages"] != 200:
            await trio.sleep(0.2)
