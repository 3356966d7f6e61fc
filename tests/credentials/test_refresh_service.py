"""The refresh service: refreshes outlive their callers, failed writes are kept and retried,
and the CLI refreshes under the same host-wide lock as the proxy (issue 11)."""

from __future__ import annotations

import base64
import errno
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.procs import ROOT, write_config
from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.cli import main
from trio_pool.config import Config
from trio_pool.credentials.pending import pending_path, save_pending
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry, read_account_file
from trio_pool.credentials.store import write_document_atomic
from trio_pool.demo import demo_config
from trio_pool.errors import CredentialsError
from trio_pool.state import ops
from trio_pool.state.pg.sealing import Keyring
from trio_pool.state.store import StateStore
from trio_pool.testing.faults import SimConfig
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState
from trio_pool.upstream.client import Timeouts, UpstreamClient

NAME = "claude/a"


class FailingWriter:
    """A pool-file writer that fails ``failures`` times with ENOSPC, then writes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self, path: Path, document: Mapping[str, Any]) -> None:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            raise CredentialsError(f"{path}: cannot write ({os.strerror(errno.ENOSPC)})")
        write_document_atomic(path, document)


@attrs.define
class World:
    config: Config
    state: SimState
    store: StateStore
    client: UpstreamClient

    def refresher(self, writer: Any = write_document_atomic) -> Refresher:
        pool = Pool(self.config.routing)
        registry = AccountRegistry(self.config, pool)
        registry.scan()
        return Refresher(self.config, registry, pool, self.client, state=self.store, write=writer)

    def on_disk(self) -> str | None:
        path = self.config.pool_dir / "claude" / "a.json"
        return read_account_file(path, "claude")[1].refresh_token

    @property
    def sim_refresh(self) -> str:
        return str(self.state.account(NAME).refresh_token)


@pytest.fixture
async def world(nursery: trio.Nursery, tmp_path: Path) -> AsyncIterator[World]:
    now = clock.now()
    state = SimState.with_accounts([new_account("claude", "a", now=now, expires_in_s=60)])
    sim_base = await nursery.start(serve_simulator, state)
    write_pool(tmp_path / "pool", state, now=now)
    config = demo_config(sim_base, tmp_path, "127.0.0.1:0")
    store = await StateStore.open(config.data_dir)
    client = UpstreamClient(Timeouts(connect_s=5, first_byte_s=10, idle_s=10))
    try:
        yield World(config, state, store, client)
    finally:
        await client.aclose()
        await store.aclose()


async def test_a_caller_cancelled_mid_refresh_does_not_cancel_the_refresh(
    world: World, nursery: trio.Nursery
) -> None:
    """The request that asked for a refresh goes away 50 ms into a 0.3 s token call: the
    service finishes the refresh, adopts the tokens and writes them."""
    world.state.config = SimConfig(token_delay_s=0.3)
    refresher = world.refresher()
    await nursery.start(refresher.serve)
    account = refresher.registry.accounts[NAME]
    with trio.fail_after(10):
        with trio.move_on_after(0.05):
            await refresher.refresh(account, reason="test", stale=account.credentials)
            raise AssertionError("the refresh should still be running")
        assert refresher.in_flight() == 1
        while refresher.in_flight():
            await trio.sleep(0.01)
    assert world.on_disk() == world.sim_refresh
    assert account.credentials.refresh_token == world.sim_refresh


async def test_a_failed_write_keeps_the_tokens_copies_them_and_retries(
    world: World, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    """ENOSPC on the write: the refresh still succeeds from memory, a 0600 copy is kept
    under data_dir, the error names the account (not a token), and the retry writes the
    file and removes the copy."""
    writer = FailingWriter(1)
    refresher = world.refresher(writer)
    await nursery.start(refresher.serve)
    account = refresher.registry.accounts[NAME]
    spent = account.credentials.refresh_token
    with trio.fail_after(10):
        assert await refresher.refresh(account, reason="test", stale=account.credentials)
        copy = pending_path(world.config.data_dir, NAME)
        assert account.unsaved
        assert copy.exists()
        assert copy.stat().st_mode & 0o777 == 0o600
        assert world.on_disk() == spent
        assert spent is not None
        assert spent not in copy.read_text()  # only its hash
        while copy.exists():
            await trio.sleep(0.05)
    assert world.on_disk() == world.sim_refresh
    assert account.credentials.refresh_token == world.sim_refresh
    assert "credentials.write_back.failed account=claude/a" in caplog.text
    for token in (world.sim_refresh, spent):
        assert token not in caplog.text


async def test_another_process_pending_copy_wins_over_the_spent_file(world: World) -> None:
    """Process A refreshed but could not write (its copy is in data_dir); process B, whose
    file still holds the spent token, refreshes under the host lock: it takes A's tokens and
    never presents the spent one (no invalid_grant, no re-login)."""
    first = world.refresher(FailingWriter(10))
    account_a = first.registry.accounts[NAME]
    with trio.fail_after(10):
        assert await first.refresh(account_a, reason="a", stale=account_a.credentials)
        second = world.refresher()
        account_b = second.registry.accounts[NAME]
        assert account_b.credentials.refresh_token != world.sim_refresh  # the spent one
        assert await second.refresh(account_b, reason="b", stale=account_b.credentials)
    assert world.state.account(NAME).refreshes == 1
    assert account_b.credentials.refresh_token == world.sim_refresh
    views = {v.name: v.state for v in second.pool.accounts(clock.now())}
    assert views[NAME] != "needs_relogin"


async def test_a_new_login_makes_an_old_pending_copy_obsolete(world: World) -> None:
    """A copy that replaces a token the file no longer holds (the user logged in again) is
    dropped at start-up; the file's login stays."""
    refresher = world.refresher()
    account = refresher.registry.accounts[NAME]
    save_pending(world.config.data_dir, NAME, {"claudeAiOauth": {}}, "an older token")
    await refresher.writeback.recover()
    assert not pending_path(world.config.data_dir, NAME).exists()
    assert not account.unsaved


async def test_cli_refresh_waits_for_the_host_lock_a_proxy_holds(
    world: World, tmp_path: Path
) -> None:
    """``trio-pool accounts refresh`` while another process holds claude/a's refresh lock:
    it calls the token endpoint only after the lock is released (it used to take no lock)."""
    sim_base = world.config.claude.upstream
    write_config(tmp_path, sim_base)
    holder = f"{os.getpid()}:test"
    assert await world.store.run(ops.try_lock, NAME, holder, clock.now(), 60.0)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "trio_pool", "accounts", "refresh", NAME, "--json"]
    process = await trio.lowlevel.open_process(
        [*argv, "--config", "config.toml"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env=env,
    )
    try:
        with trio.fail_after(20):
            await trio.sleep(1.5)  # time enough for a lock-less CLI to start and refresh
            assert world.state.account(NAME).refreshes == 0
            assert await world.store.run(ops.unlock, NAME, holder)
            assert process.stdout is not None
            output = b""
            while chunk := await process.stdout.receive_some():
                output += chunk
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
    assert json.loads(output)[0]["ok"] is True
    assert world.state.account(NAME).refreshes == 1
    assert world.on_disk() == world.sim_refresh


def test_cli_refresh_refuses_without_the_state_db(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No state.db (here: data_dir is a file) means no host lock: refuse, spend nothing."""
    monkeypatch.chdir(tmp_path)
    now = 1_900_000_000.0
    state = SimState.with_accounts([new_account("claude", "a", now=now)])
    write_pool(tmp_path / "pool", state, now=now)
    (tmp_path / "data").write_text("not a directory")
    # Token URLs on a closed loopback port: nothing may leave this machine, even on failure.
    write_config(tmp_path, "http://127.0.0.1:9")
    assert main(["accounts", "refresh", NAME]) == 1
    err = capsys.readouterr().err
    assert "refusing to refresh without the host-wide refresh lock" in err


async def test_single_host_recovery_leaves_a_multi_host_copy_alone(world: World) -> None:
    """A data dir that ran in multi-host mode: the single-host start-up neither adopts the
    sealed copy (it is about a stored version, not the pool file) nor deletes it."""
    refresher = world.refresher()
    account = refresher.registry.accounts[NAME]
    before = account.credentials
    data_dir = world.config.data_dir
    sealer = Keyring.parse("k1:" + base64.b64encode(bytes(range(32))).decode())
    document = {"claudeAiOauth": {"accessToken": "sk-ant-oat01-newer"}}
    save_pending(data_dir, NAME, document, None, base_version=3, sealer=sealer)
    await refresher.writeback.recover()
    assert pending_path(data_dir, NAME).exists()
    assert account.credentials == before
    assert not account.unsaved
