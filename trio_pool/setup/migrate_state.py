"""``trio-pool state migrate``: copy a single-host data/state.db and pool directory into
the shared PostgreSQL (run with every trio-pool of that host stopped).

Idempotent: every row goes in with ``ON CONFLICT DO NOTHING`` (ledger rows get a uid made
from their id in state.db, credentials a digest of the file), so a second run copies
nothing twice. The session secret and the admin password are copied too, so cookies and
the dashboard login keep working on every host.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import psycopg

from trio_pool.credentials.registry import collect
from trio_pool.errors import StateError
from trio_pool.state.pg import credentials as stored
from trio_pool.state.pg import schema
from trio_pool.state.pg.exchange import notify
from trio_pool.state.pg.sealing import Keyring
from trio_pool.usage import pg_ledger
from trio_pool.usage.ledger import LedgerRow
from trio_pool.usage.store import _row_from

BATCH = 5000
_COPIES = ("accounts", "counters", "pins", "users", "pool_keys", "settings")
# In PostgreSQL these hold the credential version a verdict is about, not a file's mtime_ns:
# copied as unknown (a host that loads newer credentials clears the verdict itself).
_NOT_COPIED = {"accounts": ("relogin_file_ns", "action_file_ns")}


def _copy_table(src: sqlite3.Connection, dst: psycopg.Connection, table: str) -> int:
    """Copy by column name (the two schemas gained columns in their own order)."""
    columns = [
        str(row[1])
        for row in src.execute(f"PRAGMA table_info({table})")
        if row[1] not in _NOT_COPIED.get(table, ())
    ]
    rows = src.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
    if not rows:
        return 0
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    with dst.cursor() as cursor:
        copied = 0
        for row in rows:
            cursor.execute(
                f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING".encode(),
                row,
            )
            copied += cursor.rowcount
    return copied


def migrate_state(
    state_db: Path, pool_dir: Path, dst: psycopg.Connection, keyring: Keyring, *, writer: str
) -> dict[str, int]:
    """Copy everything; how many rows of each kind were new to PostgreSQL."""
    schema.migrate(dst)
    counts: dict[str, int] = {}
    if state_db.exists():
        src = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
        try:
            live = src.execute(
                "SELECT account FROM refresh_locks WHERE expires_at > ?", (time.time(),)
            ).fetchall()
            if live:
                raise StateError(
                    f"{state_db}: a refresh is in progress ({live[0][0]}); stop every "
                    "trio-pool of this host first"
                )
            with dst.transaction():
                # The copied rows get versions above every host's "since", so they are read.
                (version,) = dst.execute(
                    "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
                ).fetchone() or (0,)
                for table in _COPIES:
                    counts[table] = _copy_table(src, dst, table)
                dst.execute("UPDATE accounts SET version = %s", (version,))
                dst.execute("UPDATE pins SET version = %s", (version,))
                notify(dst, f"seq:{version}")
            counts["usage"] = _copy_usage(src, dst)
        finally:
            src.close()
    counts["credentials"] = _import_pool(pool_dir, dst, keyring, writer)
    return counts


def _copy_usage(src: sqlite3.Connection, dst: psycopg.Connection) -> int:
    columns = (
        "id, at, user, provider, account, model, conversation, status, attempts, failures, "
        "ttfb_ms, duration_ms, input, cached, output, reasoning, bytes, client_format"
    )
    copied, last = 0, 0
    while True:
        found = src.execute(
            f"SELECT {columns} FROM usage WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH)
        ).fetchall()
        if not found:
            return copied
        items: list[tuple[str, LedgerRow]] = []
        for values in found:
            row = _row_from(tuple(values[1:]))
            items.append((f"migrated:{values[0]}:{row.at!r}", row))
        inserted, _ = pg_ledger.insert(dst, items, "migrated")
        copied += inserted
        last = int(found[-1][0])


def _import_pool(pool_dir: Path, dst: psycopg.Connection, keyring: Keyring, writer: str) -> int:
    imported = 0
    for name, item in collect(pool_dir, {}).items():
        if item.result is None or isinstance(item.result, Exception):
            continue
        document, _ = item.result
        sha = stored.file_digest(stored.encode(document))
        done = stored.import_document(
            dst, keyring, name, item.provider, document, sha=sha, writer=writer, now=time.time()
        )
        imported += done is not None
    return imported


def summary(counts: dict[str, int]) -> str:
    return json.dumps(counts, sort_keys=True)
