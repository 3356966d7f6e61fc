"""``trio-pool state migrate``: a single host's state.db and pool files into PostgreSQL,
idempotently."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.accounts.helpers import make_pool
from tests.state.pg.helpers import KEY, KEYRING
from tests.state.test_sync import cool
from trio_pool import clock
from trio_pool.auth.directory import Directory
from trio_pool.cli import main
from trio_pool.state.pg import credentials
from trio_pool.state.store import StateStore
from trio_pool.state.sync import StateSync
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.state import SimState
from trio_pool.usage import pg_ledger as ledger
from trio_pool.usage.ledger import LedgerRow
from trio_pool.usage.store import insert_rows


async def single_host(tmp_path: Path) -> None:
    """A host with a cooling account, a pin, a user with a key, 250 ledger rows, 2 files."""
    now = clock.now()
    sim = SimState.with_accounts([new_account("codex", n, now=now) for n in ("a", "b")])
    write_pool(tmp_path / "pool", sim, now=now)
    store = await StateStore.open(tmp_path / "data")
    try:
        sync = StateSync(store, make_pool("a", "b"), lambda _name: 1)
        await sync.sync_once()
        cool(sync.pool, now + 3600)
        await sync.sync_once()
        directory = Directory(store)
        await directory.start()
        await directory.add_user("ann")
        rows = [
            LedgerRow(
                now - i,
                "codex",
                "codex/a",
                "gpt-5",
                None,
                200,
                1,
                (),
                5.0,
                9.0,
                client_format="messages" if i % 2 else None,
            )
            for i in range(250)
        ]
        await store.run(insert_rows, rows)
    finally:
        await store.aclose()


async def test_migrate_copies_everything_once_and_a_second_run_adds_nothing(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Accounts with their cooldowns, users, keys, the session secret, every ledger row
    (rolled up once, with the client's API) and both credentials land in PostgreSQL; running it again copies 0."""
    await single_host(tmp_path)
    monkeypatch.setenv("TRIO_POOL_STATE_KEY", f"test:{KEY}")
    argv = ["state", "migrate", "--data-dir", str(tmp_path / "data"), "--pool-dir",
            str(tmp_path / "pool"), "--to", pg_url]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert '"usage": 250' in first
    assert '"credentials": 2' in first
    assert main(argv) == 0
    second = capsys.readouterr().out
    assert '"usage": 0' in second
    assert '"credentials": 0' in second
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert ledger.counts(conn) == (250, 250, 250)
        # Claude Code's requests served by a Codex account keep saying so (translation).
        formats = conn.execute("SELECT count(client_format) FROM usage").fetchone() or (0,)
        assert formats == (125,)
        (cooling,) = conn.execute(
            "SELECT count(*) FROM accounts WHERE cooldown_until IS NOT NULL"
        ).fetchone() or (0,)
        assert cooling == 1
        assert conn.execute("SELECT name FROM users").fetchall() == [("ann",)]
        secret = conn.execute("SELECT value FROM settings WHERE key = 'session_secret'")
        assert secret.fetchone() is not None
        stored = credentials.read(conn, KEYRING, "codex/a")
        assert stored is not None
        assert stored.version == 1
