"""The usage ledger on PostgreSQL: rows with a unique id, rolled up exactly once.

Each row carries a ``uid`` made by the host that served the request. A batch is one
statement: the rows arrive as arrays (``unnest``), ``ON CONFLICT (uid) DO NOTHING`` skips
rows already stored (an outbox replayed after a commit whose answer was lost), and the
hourly rollup sums only the rows this very statement inserted (``RETURNING``), so two
hosts inserting at once never count each other's rows (rolling up ``id >`` a maximum read
beforehand would, under READ COMMITTED). ``floor()``, not a cast: PostgreSQL rounds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import psycopg

from trio_pool.usage.ledger import HOUR_S, LedgerRow

Item = tuple[str, LedgerRow]  # (uid, row)

_INSERT = f"""
WITH ins AS (
    INSERT INTO usage (uid, host, at, "user", provider, account, model, conversation, status,
                       attempts, failures, ttfb_ms, duration_ms, input, cached, output,
                       reasoning, bytes, client_format)
    SELECT * FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[], %s::text[],
                         %s::text[], %s::text[], %s::text[], %s::int[], %s::int[], %s::text[],
                         %s::float8[], %s::float8[], %s::int8[], %s::int8[], %s::int8[],
                         %s::int8[], %s::int8[], %s::text[])
    ON CONFLICT (uid) DO NOTHING
    RETURNING provider, account, model, "user", at, status, attempts, input, cached, output,
              reasoning, bytes
), rolled AS (
    INSERT INTO usage_hourly (provider, account, model, "user", hour, requests, errors,
                              failovers, input, cached, output, reasoning, bytes)
    SELECT provider, COALESCE(account, ''), COALESCE(model, ''), COALESCE("user", ''),
           (floor(at / {HOUR_S}) * {HOUR_S})::bigint, count(*),
           count(*) FILTER (WHERE status >= 400),
           COALESCE(SUM(CASE WHEN status < 400 AND attempts > 1 THEN attempts - 1 ELSE 0 END), 0),
           SUM(input), SUM(cached), SUM(output), SUM(reasoning), SUM(bytes)
    FROM ins GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (provider, account, model, "user", hour) DO UPDATE SET
        requests = usage_hourly.requests + excluded.requests,
        errors = usage_hourly.errors + excluded.errors,
        failovers = usage_hourly.failovers + excluded.failovers,
        input = usage_hourly.input + excluded.input,
        cached = usage_hourly.cached + excluded.cached,
        output = usage_hourly.output + excluded.output,
        reasoning = usage_hourly.reasoning + excluded.reasoning,
        bytes = usage_hourly.bytes + excluded.bytes
)
SELECT count(*) FROM ins
"""


def _columns(items: Sequence[Item], host: str) -> list[list[object]]:
    rows = [row for _, row in items]
    return [
        [uid for uid, _ in items],
        [host] * len(items),
        [r.at for r in rows],
        [r.user for r in rows],
        [r.provider for r in rows],
        [r.account for r in rows],
        [r.model for r in rows],
        [r.conversation for r in rows],
        [r.status for r in rows],
        [r.attempts for r in rows],
        [json.dumps(r.failures) if r.failures else "[]" for r in rows],
        [r.ttfb_ms for r in rows],
        [r.duration_ms for r in rows],
        [r.usage.input for r in rows],
        [r.usage.cached for r in rows],
        [r.usage.output for r in rows],
        [r.usage.reasoning for r in rows],
        [r.bytes for r in rows],
        [r.client_format for r in rows],
    ]


def insert(conn: psycopg.Connection, items: Sequence[Item], host: str) -> tuple[int, float]:
    """Store ``items`` and their rollups in one transaction; (rows new to the ledger, CPU
    seconds this thread spent)."""
    started = time.thread_time()
    row = conn.execute(_INSERT.encode(), _columns(items, host)).fetchone()
    return (int(row[0]) if row else 0), time.thread_time() - started


def prune(conn: psycopg.Connection, before: float) -> int:
    with conn.transaction():
        deleted = conn.execute("DELETE FROM usage WHERE at < %s", (before,)).rowcount
        conn.execute("DELETE FROM usage_hourly WHERE hour + %s <= %s", (HOUR_S, before))
    return int(deleted)


def counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(rows, distinct uids, requests in the rollups): what the tests check for loss and
    duplicates."""
    rows, uids = conn.execute("SELECT count(*), count(DISTINCT uid) FROM usage").fetchone() or (
        0,
        0,
    )
    (rolled,) = conn.execute("SELECT COALESCE(SUM(requests), 0) FROM usage_hourly").fetchone() or (
        0,
    )
    return int(rows), int(uids), int(rolled)
