"""The local outbox of multi-host mode: ledger rows the shared database could not take.

When PostgreSQL is unreachable the flusher writes its batch here (``data/outbox.db``, a
small SQLite file of this host) with each row's uid, and replays it once the engine is
back. Replays insert with ``ON CONFLICT (uid) DO NOTHING``, so a batch that did commit
before its answer was lost is not counted twice: at least once, deduplicated.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import trio

from trio_pool.errors import StateError
from trio_pool.usage.ledger import LedgerRow
from trio_pool.usage.store import _row_from, _row_params

T = TypeVar("T")
OUTBOX_FILE = "outbox.db"
Item = tuple[str, LedgerRow]


def _connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE IF NOT EXISTS outbox (uid TEXT PRIMARY KEY, row TEXT NOT NULL)")
    return conn


def _put(conn: sqlite3.Connection, items: Sequence[Item]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany(
            "INSERT OR IGNORE INTO outbox VALUES (?, ?)",
            [(uid, json.dumps(_row_params(row))) for uid, row in items],
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _take(conn: sqlite3.Connection, limit: int) -> list[Item]:
    found = conn.execute("SELECT uid, row FROM outbox ORDER BY rowid LIMIT ?", (limit,))
    return [(uid, _row_from(tuple(json.loads(text)))) for uid, text in found]


def _delete(conn: sqlite3.Connection, uids: Sequence[str]) -> None:
    conn.executemany("DELETE FROM outbox WHERE uid = ?", [(u,) for u in uids])


def _count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


class Outbox:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._limiter = trio.CapacityLimiter(1)
        self.pending = 0

    @classmethod
    async def open(cls, data_dir: Path) -> Outbox:
        path = data_dir / OUTBOX_FILE
        try:
            conn = await trio.to_thread.run_sync(_connect, path)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"{path}: cannot open the ledger outbox ({exc})") from None
        outbox = cls(conn, path)
        outbox.pending = await outbox._run(_count)
        return outbox

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await trio.to_thread.run_sync(
                partial(fn, self._conn, *args), limiter=self._limiter
            )
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from None

    async def put(self, items: Sequence[Item]) -> None:
        await self._run(_put, items)
        self.pending = await self._run(_count)

    async def take(self, limit: int) -> list[Item]:
        result: list[Item] = await self._run(_take, limit)
        return result

    async def delete(self, uids: Sequence[str]) -> None:
        await self._run(_delete, uids)
        self.pending = await self._run(_count)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._conn.close, limiter=self._limiter)
