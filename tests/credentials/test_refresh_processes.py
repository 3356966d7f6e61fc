"""C2, C3 and M7 with real ``trio-pool serve`` processes: a rotated refresh token reaches
the pool file (or a pending copy) whatever the client, the signals or the disk do."""

from __future__ import annotations

import json
import signal
import stat
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import StartServe
from tests.procs import Served, without_dac_override, write_config
from tests.rawclient import claude_request, connect, read_until, status_of
from trio_pool import clock
from trio_pool.credentials.pending import pending_path
from trio_pool.credentials.store import read_account
from trio_pool.testing.faults import SimConfig
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState

CLAUDE = "claude/a"


async def expiring_claude(
    nursery: trio.Nursery, workdir: Path, *, token_delay_s: float, **settings: Any
) -> SimState:
    """A simulator with claude/a expiring in 60 s (inside the refresh lead) and its pool."""
    now = clock.now()
    state = SimState.with_accounts([new_account("claude", "a", now=now, expires_in_s=60)])
    state.config = SimConfig(token_delay_s=token_delay_s)
    sim_base = await nursery.start(serve_simulator, state)
    await trio.to_thread.run_sync(lambda: write_pool(workdir / "pool", state, now=now))
    write_config(workdir, sim_base, **settings)
    return state


def refresh_in_file(workdir: Path) -> str | None:
    _doc, credentials, _info = read_account(workdir / "pool" / "claude" / "a.json", "claude")
    return credentials.refresh_token


async def wait_for_file(workdir: Path, state: SimState) -> None:
    """Until the pool file holds the simulator's current refresh token."""
    while (
        await trio.to_thread.run_sync(refresh_in_file, workdir)
        != state.account(CLAUDE).refresh_token
    ):
        await trio.sleep(0.05)


async def wait_for_refreshes(state: SimState, count: int) -> None:
    while state.account(CLAUDE).refreshes < count:
        await trio.sleep(0.01)


async def hang_up_during_refresh(port: int, state: SimState, refreshes: int) -> None:
    """The audit's C2 client: a request, then a normal hang-up while the token call it caused
    is in flight (the endpoint has rotated the token: its counter reached ``refreshes``). A
    fixed delay instead raced a loaded machine, where the request had not arrived yet."""
    stream = await connect(port)
    await stream.send_all(claude_request(stream=False))
    await wait_for_refreshes(state, refreshes)
    await stream.send_eof()
    await stream.aclose()


def assert_no_loss(served: Served) -> None:
    assert served.alive
    assert "credentials.refresh.rejected" not in served.text
    assert "Traceback" not in served.text


async def test_a_hang_up_during_a_refresh_never_loses_the_rotated_token(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """Three times: a request that needs a refresh (expiry, then 401s), the client hanging
    up while the token endpoint holds its answer for 0.3 s: the new token is in the file."""
    state = await expiring_claude(nursery, tmp_path, token_delay_s=0.3)
    with trio.fail_after(30):
        served = await serve_process(tmp_path)
        for round_ in range(3):
            if round_:
                state.force(CLAUDE, "unauthorized")  # the next refresh is on a 401
            await hang_up_during_refresh(served.port, state, round_ + 1)
            await wait_for_file(tmp_path, state)
        assert await status_of(served.base) == 200
    assert state.account(CLAUDE).refreshes == 3
    assert_no_loss(served)


async def test_sigterm_during_a_refresh_waits_for_it_and_writes_the_token(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """SIGTERM while a 2 s token call is in flight, with a 0.3 s grace: the process waits
    for the refresh, writes the new token and exits 0."""
    state = await expiring_claude(nursery, tmp_path, token_delay_s=2.0, shutdown_grace_s=0.3)
    with trio.fail_after(30):
        served = await serve_process(tmp_path)
        stream = await connect(served.port)
        await stream.send_all(claude_request(stream=False))
        await wait_for_refreshes(state, 1)  # the endpoint has rotated the token
        served.process.send_signal(signal.SIGTERM)
        assert await served.process.wait() == 0
        await stream.aclose()
    assert refresh_in_file(tmp_path) == state.account(CLAUDE).refresh_token
    assert "credentials.refresh.ok account=claude/a" in served.text


async def test_an_unwritable_pool_dir_keeps_the_new_token_in_memory_and_on_restart(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """C3: the usage poll refreshes claude/a while its directory cannot be written. The
    proxy stays up and serves with the new tokens, keeps a 0600 copy under data_dir, and
    after a kill and a restart (directory writable again) writes the copy into the pool
    file; the next refresh is accepted (the spent token was never sent again).

    How the write fails: the directory is made read-only. Root ignores that, so as root the
    child runs under setpriv without CAP_DAC_OVERRIDE; a full tmpfs or a read-only bind
    mount would need root, and chattr needs root and ext4."""
    prefix = without_dac_override()
    if prefix is None:
        pytest.skip("running as root without setpriv: a read-only directory would not bind")
    state = await expiring_claude(nursery, tmp_path, token_delay_s=0.0)
    claude_dir = tmp_path / "pool" / "claude"
    spent = await trio.to_thread.run_sync(refresh_in_file, tmp_path)
    claude_dir.chmod(0o555)
    try:
        with trio.fail_after(40):
            served = await serve_process(tmp_path, prefix=prefix)
            # No request: the usage poller (first run after 5 s) triggers the refresh.
            await served.wait_log(r"credentials\.write_back\.failed account=claude/a")
            assert served.alive
            assert refresh_in_file(tmp_path) == spent  # the file could not take it
            copy = pending_path(tmp_path / "data", CLAUDE)
            assert stat.S_IMODE(copy.stat().st_mode) == 0o600
            assert json.loads(copy.read_text())["document"]["claudeAiOauth"]["refreshToken"] == (
                state.account(CLAUDE).refresh_token
            )
            stream = await connect(served.port)
            await stream.send_all(claude_request(stream=False))
            assert (await read_until(stream, b"\r\n")).startswith(b"HTTP/1.1 200")
            await stream.aclose()
            assert state.account(CLAUDE).refreshes == 1  # served from memory
            served.process.kill()
            await served.process.wait()
            assert_no_secret(served, state)
            claude_dir.chmod(0o755)
            restarted = await serve_process(tmp_path)
            await restarted.wait_log(r"credentials\.pending\.adopted account=claude/a")
            await restarted.wait_log(r"credentials\.write_back\.ok account=claude/a")
            assert refresh_in_file(tmp_path) == state.account(CLAUDE).refresh_token
            assert not copy.exists()
            state.force(CLAUDE, "unauthorized")
            assert await status_of(restarted.base) == 200
            await hang_up_during_refresh(restarted.port, state, 2)
            await wait_for_file(tmp_path, state)
    finally:
        claude_dir.chmod(0o755)
    assert_no_loss(restarted)


def assert_no_secret(served: Served, state: SimState) -> None:
    account = state.account(CLAUDE)
    for secret in (account.refresh_token, account.access_token):
        assert secret not in served.text


async def test_a_deeply_nested_pool_file_is_skipped_and_named(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """M7: a 400 KB '[[[...]]]' file, present at start and added while running: the proxy
    starts, keeps serving, and names the file."""
    await expiring_claude(nursery, tmp_path, token_delay_s=0.0)
    deep = b"[" * 200_000 + b"]" * 200_000
    (tmp_path / "pool" / "claude" / "deep.json").write_bytes(deep)
    with trio.fail_after(20):
        served = await serve_process(tmp_path)
        assert "account=claude/deep" in served.text
        (tmp_path / "pool" / "codex").mkdir(exist_ok=True)
        (tmp_path / "pool" / "codex" / "deep2.json").write_bytes(deep)
        await served.wait_log(r"pool\.account\.skipped account=codex/deep2")
        assert await status_of(served.base) == 200
        assert served.alive
    assert "nested too deeply" in served.text
