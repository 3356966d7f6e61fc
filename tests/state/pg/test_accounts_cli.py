"""``trio-pool accounts list | remove | refresh`` in multi-host mode act on the shared
store: list reads it, remove takes an account out on every host (and a tombstone keeps the
same pool file from being imported again), refresh goes through the hosts' lease."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from tests.multihost.cluster import KEY
from trio_pool import clock
from trio_pool.cli import main
from trio_pool.config import StateConfig
from trio_pool.state.pg import credentials
from trio_pool.state.pg.sealing import Keyring
from trio_pool.state.pg.store import PgStore
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import credential_file, write_pool
from trio_pool.testing.server import serve_simulator, urls
from trio_pool.testing.state import SimState


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run the CLI (it calls trio.run itself: in a thread); its exit code and stdout."""
    code = await trio.to_thread.run_sync(main, list(argv))
    return code, capsys.readouterr().out


async def test_list_remove_and_refresh_act_on_the_shared_store(
    tmp_path: Path,
    pg_url: str,
    nursery: trio.Nursery,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Two accounts imported; ``list`` shows both with their stored version; ``remove a``
    deletes the local file and every host's copy, and re-importing that same file does
    nothing (a new login would); ``refresh b`` rotates it once and stores the rotation."""
    monkeypatch.setenv("TRIO_POOL_STATE_KEY", KEY)
    now = clock.now()
    sim = SimState.with_accounts([new_account("claude", n, now=now) for n in ("a", "b")])
    base = await nursery.start(serve_simulator, sim)
    write_pool(tmp_path / "pool", sim, now=now)
    endpoints = urls(base)
    lines = [
        'listen = "127.0.0.1:1"',  # no proxy there: list reads the store alone
        f'pool_dir = "{tmp_path / "pool"}"',
        f'data_dir = "{tmp_path / "data"}"',
        f'state_url = "{pg_url}"',
        "[claude]",
        *(f'{k} = "{v}"' for k, v in endpoints["claude"].items()),
    ]
    config = tmp_path / "config.toml"
    config.write_text("\n".join(lines) + "\n")
    with trio.fail_after(60):
        assert (await cli(capsys, "state", "migrate", "--config", str(config)))[0] == 0
        code, out = await cli(capsys, "accounts", "list", "--json", "--config", str(config))
        assert code == 0
        listed = json.loads(out)["accounts"]
        assert [(a["name"], a["version"]) for a in listed] == [("claude/a", 1), ("claude/b", 1)]
        for account in sim.accounts.values():  # masked tokens only
            assert account.access_token not in out
            assert account.refresh_token not in out

        code, out = await cli(capsys, "accounts", "remove", "a", "--config", str(config))
        assert code == 0, out
        assert not (tmp_path / "pool" / "claude" / "a.json").exists()
        store = await PgStore.open(pg_url, StateConfig(), writer="test")
        try:
            keyring = Keyring.parse(KEY)
            assert await store.run(credentials.versions) == {"claude/b": 1}
            old = credential_file(sim.account("claude/a"), now)
            sha = credentials.file_digest(credentials.encode(old))
            again = await store.run(
                credentials.import_document, keyring, "claude/a", "claude", old, sha=sha,
                writer="test", now=now,
            )  # fmt: skip
            assert again is None  # the same file: stays removed
            assert await store.run(credentials.read, keyring, "claude/a") is None

            code, out = await cli(capsys, "accounts", "refresh", "b", "--config", str(config))
            assert code == 0, out
            assert sim.account("claude/b").rotations == 1
            found = await store.run(credentials.read, keyring, "claude/b")
            assert found is not None
            assert found.version == 2
            token = found.document["claudeAiOauth"]["refreshToken"]
            assert token == sim.account("claude/b").refresh_token
        finally:
            await store.aclose()
        code, out = await cli(capsys, "accounts", "list", "--config", str(config))
        assert "claude/b" in out
        assert "claude/a" not in out
