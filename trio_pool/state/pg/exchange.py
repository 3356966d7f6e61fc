"""The sync exchange on PostgreSQL: the same merge as ``state.ops`` for SQLite.

One writing transaction at a time: it starts with ``UPDATE meta SET value = value + 1``,
whose row lock is held until commit, so writers commit in version order and a reader's
``version > since`` never skips a row (a SEQUENCE would not do: its numbers are handed out
before commit, so 12 could commit before 11). The writer's ``pg_notify`` is delivered at
commit and wakes every other host's sync loop at once (``listen.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from trio_pool.accounts.model import DAY_S, PinRecord
from trio_pool.providers.base import PROVIDERS, TokenUsage
from trio_pool.state import db
from trio_pool.state.merge import Counters, StoredAccount, resolve_write
from trio_pool.state.ops import Pulled, Push

CHANNEL = "trio_pool"
_SELECT = f"SELECT {db.ACCOUNT_COLUMNS} FROM accounts"
_UPSERT = (
    f"INSERT INTO accounts ({db.ACCOUNT_COLUMNS}, writer, updated_at, version) VALUES "
    f"({', '.join(['%s'] * (db.ACCOUNT_COLUMNS.count(',') + 4))}) ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(
        f"{c} = excluded.{c}"
        for c in [*db.ACCOUNT_COLUMNS.split(", ")[1:], "writer", "updated_at", "version"]
    )
)
_COUNT = (
    "INSERT INTO counters VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (account, day) "
    "DO UPDATE SET requests = counters.requests + excluded.requests, "
    "input = counters.input + excluded.input, cached = counters.cached + excluded.cached, "
    "output = counters.output + excluded.output, "
    "reasoning = counters.reasoning + excluded.reasoning"
)


def notify(conn: psycopg.Connection, payload: str) -> None:
    """Tell every listening host (delivered when the surrounding transaction commits)."""
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))


def _read_account(conn: psycopg.Connection, name: str) -> StoredAccount | None:
    row = conn.execute(_SELECT.encode() + b" WHERE name = %s", (name,)).fetchone()
    return None if row is None else db.account_from_row(tuple(row))


def _add_counts(
    conn: psycopg.Connection, account: str, day: int, requests: int, tokens: TokenUsage
) -> None:
    if requests == 0 and tokens == TokenUsage():
        return
    conn.execute(
        _COUNT.encode(),
        (account, day, requests, tokens.input, tokens.cached, tokens.output, tokens.reasoning),
    )


def _write(conn: psycopg.Connection, push: Push, writer: str, now: float, version: int) -> None:
    name = push.record.name
    if push.row:
        stored = resolve_write(
            _read_account(conn, name), push.record, push.verdicts, now, push.relogin_file_ns
        )
        conn.execute(_UPSERT.encode(), (*db.account_params(stored), writer, now, version))
    counts = push.counts
    _add_counts(conn, name, counts.day, counts.requests, counts.today)
    earlier = TokenUsage(
        counts.total.input - counts.today.input,
        counts.total.cached - counts.today.cached,
        counts.total.output - counts.today.output,
        counts.total.reasoning - counts.today.reasoning,
    )
    _add_counts(conn, name, push.old_day if push.old_day >= 0 else counts.day, 0, earlier)


def _counters(conn: psycopg.Connection, day: int) -> dict[str, Counters]:
    rows = conn.execute(
        "SELECT account, "
        "COALESCE(SUM(requests) FILTER (WHERE day = %(d)s), 0), "
        "COALESCE(SUM(input) FILTER (WHERE day = %(d)s), 0), "
        "COALESCE(SUM(cached) FILTER (WHERE day = %(d)s), 0), "
        "COALESCE(SUM(output) FILTER (WHERE day = %(d)s), 0), "
        "COALESCE(SUM(reasoning) FILTER (WHERE day = %(d)s), 0), "
        "SUM(input), SUM(cached), SUM(output), SUM(reasoning) "
        "FROM counters GROUP BY account",
        {"d": day},
    ).fetchall()
    return {
        account: Counters(
            day,
            int(n),
            TokenUsage(int(i), int(c), int(o), int(r)),
            TokenUsage(int(ti), int(tc), int(to), int(tr)),
        )
        for account, n, i, c, o, r, ti, tc, to, tr in rows
    }


def exchange(
    conn: psycopg.Connection,
    *,
    writer: str,
    now: float,
    pushes: Sequence[Push],
    pins: Sequence[PinRecord],
    fetch: Sequence[str],
    since: int,
) -> Pulled:
    """Write our changes, then read what changed since version ``since`` (ours included),
    every account named in ``fetch`` or pushed, and every account's counters."""
    with conn.transaction():
        if pushes or pins:
            (version,) = conn.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'seq' RETURNING value"
            ).fetchone() or (0,)
            for push in pushes:
                _write(conn, push, writer, now, version)
            if pins:
                with conn.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO pins VALUES (%s, %s, %s, %s, %s) ON CONFLICT (provider, key) "
                        "DO UPDATE SET account = excluded.account, "
                        "last_used = excluded.last_used, version = excluded.version "
                        "WHERE excluded.last_used > pins.last_used",
                        [(p.provider, p.key, p.account, p.last_used, version) for p in pins],
                    )
            notify(conn, f"seq:{version}:{writer}")
        else:
            (version,) = conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone() or (0,)
        rows = [
            tuple(r)
            for r in conn.execute(_SELECT.encode() + b" WHERE version > %s", (since,)).fetchall()
        ]
        wanted = sorted(set(fetch) | {p.record.name for p in pushes})
        if wanted:
            rows += [
                tuple(r)
                for r in conn.execute(
                    _SELECT.encode() + b" WHERE name = ANY(%s)", (wanted,)
                ).fetchall()
            ]
        accounts = {s.record.name: s for s in map(db.account_from_row, rows) if s is not None}
        pin_rows = conn.execute(
            "SELECT provider, key, account, last_used FROM pins WHERE version > %s", (since,)
        ).fetchall()
        counters = _counters(conn, int(now // DAY_S))
    pulled_pins = [PinRecord(p, k, a, t) for p, k, a, t in pin_rows if p in PROVIDERS]
    return Pulled(accounts, counters, pulled_pins, int(version))


def prune_pins(conn: psycopg.Connection, before: float) -> int:
    """Forget pins idle since before ``before``; how many went."""
    return conn.execute("DELETE FROM pins WHERE last_used < %s", (before,)).rowcount
