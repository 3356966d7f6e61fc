"""The ledger on disk: batched writes to state.db and the trio service that flushes them.

Requests append rows to ``Ledger.record`` (no await, no disk); ``Ledger.serve`` writes
what has gathered every FLUSH_S or FLUSH_ROWS rows, in one transaction through the
StateStore's worker thread, and prunes rows past the retention once an hour. On
shutdown whatever is buffered is written before the store closes.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Protocol

import trio

from trio_pool import clock
from trio_pool.errors import StateError
from trio_pool.providers.base import TokenUsage
from trio_pool.state.db import transaction
from trio_pool.state.store import StateStore
from trio_pool.usage.ledger import (
    HOUR_S,
    LedgerBuffer,
    LedgerRow,
    RollupKey,
    RollupTotals,
    hour_of,
)

log = logging.getLogger(__name__)

FLUSH_S = 1.0
FLUSH_ROWS = 1000  # one transaction per second up to 1000 requests/s
# Rows per INSERT statement: 58 x 17 parameters stays under the 999 of older SQLite builds.
INSERT_CHUNK = 58
PRUNE_EVERY_S = float(HOUR_S)
DAY_S = 86400.0

_ROW_COLUMNS = (
    "at, user, provider, account, model, conversation, status, attempts, failures, "
    "ttfb_ms, duration_ms, input, cached, output, reasoning, bytes, client_format"
)
_ROW_WIDTH = 17


# -- blocking SQL (runs in the store's worker thread) -------------------------------------


def _row_params(row: LedgerRow) -> tuple[Any, ...]:
    u = row.usage
    return (
        row.at,
        row.user,
        row.provider,
        row.account,
        row.model,
        row.conversation,
        row.status,
        row.attempts,
        json.dumps(row.failures) if row.failures else "[]",
        row.ttfb_ms,
        row.duration_ms,
        u.input,
        u.cached,
        u.output,
        u.reasoning,
        row.bytes,
        row.client_format,
    )


@functools.lru_cache(maxsize=INSERT_CHUNK)
def chunk_sizes(rows: int) -> list[int]:
    """Rows per INSERT: full chunks, then the rest in powers of two. The sqlite3 module keeps
    every distinct statement it prepared (up to 128); one per remainder size (1..59) made
    the proxy's memory creep up over long runs, seven sizes keep it flat."""
    sizes = [INSERT_CHUNK] * (rows // INSERT_CHUNK)
    rest, size = rows % INSERT_CHUNK, 32
    while rest:
        if rest >= size:
            sizes.append(size)
            rest -= size
        size //= 2
    return sizes


@functools.cache
def _insert_sql(rows: int) -> str:
    one = f"({', '.join('?' * _ROW_WIDTH)})"
    return f"INSERT INTO usage ({_ROW_COLUMNS}) VALUES {', '.join([one] * rows)}"


# The rollups of the rows just inserted (ids above the previous largest), summed in SQLite
# like ledger.rollup() sums them in Python (migration 3 rebuilds them the same way).
_ROLLUP_SQL = (
    "INSERT INTO usage_hourly (provider, account, model, user, hour, requests, errors, "
    "failovers, input, cached, output, reasoning, bytes) "
    "SELECT provider, COALESCE(account, ''), COALESCE(model, ''), COALESCE(user, ''), "
    f"CAST(at / {HOUR_S} AS INTEGER) * {HOUR_S}, COUNT(*), SUM(status >= 400), "
    "SUM(CASE WHEN status < 400 AND attempts > 1 THEN attempts - 1 ELSE 0 END), "
    "SUM(input), SUM(cached), SUM(output), SUM(reasoning), SUM(bytes) "
    "FROM usage WHERE id > ? GROUP BY 1, 2, 3, 4, 5 "
    "ON CONFLICT (provider, account, model, user, hour) DO UPDATE SET "
    "requests = requests + excluded.requests, errors = errors + excluded.errors, "
    "failovers = failovers + excluded.failovers, "
    "input = input + excluded.input, cached = cached + excluded.cached, "
    "output = output + excluded.output, reasoning = reasoning + excluded.reasoning, "
    "bytes = bytes + excluded.bytes"
)


Statement = tuple[str, list[Any]]


def insert_statements(rows: Sequence[LedgerRow]) -> list[Statement]:
    """The INSERTs of ``rows``, INSERT_CHUNK rows per statement, parameters flattened.

    Built on the event loop, so that the worker thread runs little Python: while it holds
    the GIL, the loop waits for it, and each hand-over costs both threads.
    """
    statements, start = [], 0
    for size in chunk_sizes(len(rows)):
        chunk = rows[start : start + size]
        start += size
        flat = [value for row in chunk for value in _row_params(row)]
        statements.append((_insert_sql(size), flat))
    return statements


def write_statements(conn: sqlite3.Connection, statements: Sequence[Statement]) -> float:
    """Rows from insert_statements() and their rollups, in one transaction; the CPU seconds
    this thread spent on it.

    Few statements on purpose: each one lets go of the GIL and takes it back, which costs
    more than a row when the event loop is busy (so no executemany of one row at a time).
    """
    started = time.thread_time()
    with transaction(conn):
        (last,) = conn.execute("SELECT COALESCE(MAX(id), 0) FROM usage").fetchone()
        for sql, params in statements:
            conn.execute(sql, params)
        conn.execute(_ROLLUP_SQL, (last,))
    return time.thread_time() - started


def insert_rows(conn: sqlite3.Connection, rows: Sequence[LedgerRow]) -> None:
    """The rows and their rollups, in one transaction."""
    write_statements(conn, insert_statements(rows))


def prune(conn: sqlite3.Connection, before: float) -> int:
    """Delete rows (and whole hours of rollups) older than ``before``; rows deleted."""
    with transaction(conn):
        deleted = conn.execute("DELETE FROM usage WHERE at < ?", (before,)).rowcount
        conn.execute("DELETE FROM usage_hourly WHERE hour + ? <= ?", (HOUR_S, before))
    return int(deleted)


def read_rows(conn: sqlite3.Connection, since: float = 0.0) -> list[LedgerRow]:
    found = conn.execute(
        f"SELECT {_ROW_COLUMNS} FROM usage WHERE at >= ? ORDER BY id", (since,)
    ).fetchall()
    return [_row_from(values) for values in found]


def _row_from(values: tuple[Any, ...]) -> LedgerRow:
    at, user, provider, account, model, conv, status, attempts, failures, ttfb, duration = values[
        :11
    ]
    return LedgerRow(
        at=at,
        user=user,
        provider=provider,
        account=account,
        model=model,
        conversation=conv,
        status=status,
        attempts=attempts,
        failures=tuple(json.loads(failures)),
        ttfb_ms=ttfb,
        duration_ms=duration,
        usage=TokenUsage(*values[11:15]),
        bytes=values[15],
        # Rows spooled by a trio-pool before state.db migration 6 have no client format.
        client_format=values[16] if len(values) > 16 else None,
    )


def read_rollups(conn: sqlite3.Connection, since: float = 0.0) -> dict[RollupKey, RollupTotals]:
    found = conn.execute(
        "SELECT provider, account, model, user, hour, requests, errors, failovers, input, "
        "cached, output, reasoning, bytes FROM usage_hourly WHERE hour >= ?",
        (hour_of(since),),
    ).fetchall()
    return {
        RollupKey(p, a, m, u, h): RollupTotals(n, e, f, TokenUsage(i, c, o, r), b)
        for (p, a, m, u, h, n, e, f, i, c, o, r, b) in found
    }


# -- the service --------------------------------------------------------------------------


class LedgerSink(Protocol):
    """Where batches go instead of state.db (multi-host mode: ``usage/shared.py``)."""

    async def write(self, rows: Sequence[LedgerRow]) -> float: ...

    async def prune(self, before: float) -> int: ...


async def _write(store: StateStore | LedgerSink, batch: Sequence[LedgerRow]) -> float:
    if isinstance(store, StateStore):
        return await store.run(write_statements, insert_statements(batch))
    return await store.write(batch)


async def _prune(store: StateStore | LedgerSink, before: float) -> int:
    if isinstance(store, StateStore):
        return await store.run(prune, before)
    return await store.prune(before)


class Ledger:
    """The request side (``record``) and the disk side (``serve``) of the ledger."""

    def __init__(self, *, retention_days: float, buffer: LedgerBuffer | None = None) -> None:
        self.retention_days = retention_days
        self.buffer = LedgerBuffer() if buffer is None else buffer
        self._wake = trio.Event()
        self._warned = False
        # What the ledger cost so far (the benchmark and /metrics can show it).
        self.rows_written = 0
        self.write_cpu_s = 0.0  # in the store's worker thread

    @property
    def dropped(self) -> int:
        return self.buffer.dropped

    def record(self, row: LedgerRow) -> None:
        """Keep ``row`` for the next flush. Never waits; a full buffer drops it (counted)."""
        if not self.buffer.append(row):
            if not self._warned:
                self._warned = True
                log.warning(
                    "ledger.buffer.full rows=%d (the state db is not keeping up; rows are "
                    "dropped and counted in trio_pool_ledger_rows_dropped_total)",
                    self.buffer.limit,
                )
            return
        if len(self.buffer) >= FLUSH_ROWS:
            self._wake.set()

    async def flush(self, store: StateStore | LedgerSink) -> int:
        """Write the rows buffered when it starts; rows written. A failed write puts its
        batch back.

        Rows that arrive during the write wait for the next flush. Chasing them instead
        kept the flusher writing batches of a few dozen rows back to back under load, and
        each batch costs the event loop as much as a thousand rows: the worker thread takes
        the GIL a few times per batch, and every wait for it wakes both threads again and
        again (15 % of the proxy's CPU at 2,000 requests/s, bench/).
        """
        written = 0
        pending = len(self.buffer)
        while pending > 0:
            batch = self.buffer.take(min(pending, FLUSH_ROWS))
            pending -= len(batch)
            try:
                self.write_cpu_s += await _write(store, batch)
            except StateError as exc:
                self.buffer.put_back(batch)
                log.error("ledger.flush.failed rows=%d reason=%s", len(batch), exc)
                break
            written += len(batch)
        self.rows_written += written
        return written

    async def prune(self, store: StateStore | LedgerSink, now: float) -> None:
        try:
            deleted = await _prune(store, now - self.retention_days * DAY_S)
        except StateError as exc:
            log.error("ledger.prune.failed reason=%s", exc)
            return
        if deleted:
            log.info("ledger.pruned rows=%d retention_days=%s", deleted, self.retention_days)

    async def serve(
        self,
        store: StateStore | LedgerSink,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Flush until cancelled; then a last, shielded flush (nothing buffered is lost)."""
        next_prune = -math.inf
        task_status.started()
        try:
            while True:
                with trio.move_on_after(FLUSH_S):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self.flush(store)
                now = clock.now()
                if now >= next_prune:
                    next_prune = now + PRUNE_EVERY_S
                    await self.prune(store, now)
        finally:
            with trio.CancelScope(shield=True):
                while len(self.buffer) and await self.flush(store):
                    pass
