"""state.db: schema, migrations, row conversion and the refresh lock."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from trio_pool.accounts.model import AccountAction, AccountRecord, ObservedWindow
from trio_pool.providers.base import QuotaWindow
from trio_pool.state import db, ops
from trio_pool.state.merge import Stamps, StoredAccount

T0 = 1_700_000_000.0


def test_fresh_db_is_created_in_wal_mode_at_the_current_version(tmp_path: Path) -> None:
    """Opening creates the directory and the schema; reopening changes nothing."""
    path = tmp_path / "data" / "state.db"
    conn = db.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.schema_version(conn) == db.SCHEMA_VERSION
    conn.close()
    again = db.connect(path)
    assert again.execute("SELECT COUNT(*) FROM version").fetchone()[0] == db.SCHEMA_VERSION
    again.close()


def test_db_from_a_newer_trio_pool_is_refused(tmp_path: Path) -> None:
    """A schema version we do not know is an error, not a silent downgrade."""
    path = tmp_path / "state.db"
    db.connect(path).execute("INSERT INTO version VALUES (99)")
    with pytest.raises(sqlite3.DatabaseError, match="schema version 99"):
        db.connect(path)


def test_account_row_round_trip(tmp_path: Path) -> None:
    """Every shared field and stamp survives the db; the row holds no token."""
    record = AccountRecord(
        "claude/work",
        "claude",
        windows=(
            ObservedWindow(QuotaWindow("5h", 0.4, 18000.0, T0 + 60), T0),
            ObservedWindow(QuotaWindow("7d_opus", 1.0, 604800.0, T0 + 90, "opus"), T0),
        ),
        action=AccountAction("org_disabled", "Your organization is disabled.", None, T0),
        cooldown_until=T0 + 600,
        cooldown_reason="quota exhausted",
        quota_fallback_level=2,
        backoff_until=T0 + 5,
        backoff_reason="throttled",
        throttle_level=1,
        penalty=0.3,
        penalty_at=T0,
        needs_relogin="invalid_grant",
        last_used=T0 - 1,
    )
    stored = StoredAccount(record, Stamps(T0, T0 + 1, T0 + 2, 123, T0 + 3, 456))
    conn = db.connect(tmp_path / "state.db")
    conn.execute(
        f"INSERT INTO accounts ({db.ACCOUNT_COLUMNS}, writer, updated_at, version)"
        f" VALUES ({db.ACCOUNT_MARKS})",
        (*db.account_params(stored), "w", T0, 1),
    )
    row = conn.execute(f"SELECT {db.ACCOUNT_COLUMNS} FROM accounts").fetchone()
    assert db.account_from_row(row) == stored


def test_unparsable_windows_are_dropped() -> None:
    """A damaged windows column loses only the damaged entries."""
    good = '{"name":"7d","used":0.5,"window_s":null,"resets_at":null,"seen_at":1}'
    assert db.windows_from_json("not json") == ()
    assert [w.name for w in db.windows_from_json(f'[{{"name":"5h"}},{good}]')] == ["7d"]


def test_refresh_lock_is_exclusive_and_expires(tmp_path: Path) -> None:
    """One holder at a time; an expired lock can be taken; only the holder releases it."""
    conn = db.connect(tmp_path / "state.db")
    mine, theirs = "1:a", "1:b"  # pid 1 is always alive
    assert ops.try_lock(conn, "codex/a", mine, T0, 60)
    assert not ops.try_lock(conn, "codex/a", theirs, T0 + 59, 60)
    assert ops.try_lock(conn, "codex/b", theirs, T0, 60)  # per account
    assert not ops.unlock(conn, "codex/a", theirs)
    assert ops.try_lock(conn, "codex/a", theirs, T0 + 61, 60)  # expired
    assert not ops.unlock(conn, "codex/a", mine)  # no longer ours
    assert ops.unlock(conn, "codex/a", theirs)
    assert ops.try_lock(conn, "codex/a", mine, T0 + 62, 60)


def test_lock_of_a_dead_process_is_taken_at_once(tmp_path: Path) -> None:
    """A holder that died (kill -9) does not block refreshes until its lock expires."""
    conn = db.connect(tmp_path / "state.db")
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    dead = f"{child.stdout.strip()}:x"
    assert ops.try_lock(conn, "codex/a", dead, T0, 60)
    assert ops.try_lock(conn, "codex/a", "1:other", T0 + 1, 60)
