"""The transactions on state.db: one sync exchange, pin pruning, the refresh lock.

Blocking; each function is one short transaction (``BEGIN IMMEDIATE`` when it writes, so
two processes never interleave a read-merge-write of the same row).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence

import attrs

from trio_pool.accounts.model import DAY_S, AccountRecord, PinRecord
from trio_pool.providers.base import PROVIDERS, TokenUsage
from trio_pool.state import db
from trio_pool.state.merge import Counters, StoredAccount, resolve_write


@attrs.frozen
class Push:
    """What this process changed about one account since it last agreed with the db."""

    record: AccountRecord  # the process's record (counters ignored)
    verdicts: frozenset[str]  # verdict groups it changed ("cooldown", "backoff", ...)
    counts: Counters  # counter increments (requests, tokens) since the last sync
    old_day: int  # the day the previous counts belonged to (for a rollover)
    relogin_file_ns: int | None = None  # the credential file's mtime_ns (relogin, action)
    row: bool = True  # False: only the counters changed


@attrs.frozen
class Pulled:
    accounts: dict[str, StoredAccount]
    counters: dict[str, Counters]
    pins: list[PinRecord]
    version: int


def _read_account(conn: sqlite3.Connection, name: str) -> StoredAccount | None:
    row = conn.execute(
        f"SELECT {db.ACCOUNT_COLUMNS} FROM accounts WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else db.account_from_row(row)


def _add_counts(conn: sqlite3.Connection, account: str, day: int, requests: int,
                tokens: TokenUsage) -> None:  # fmt: skip
    if requests == 0 and tokens == TokenUsage():
        return
    conn.execute(
        "INSERT INTO counters VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (account, day) DO UPDATE"
        " SET requests = requests + excluded.requests, input = input + excluded.input,"
        " cached = cached + excluded.cached, output = output + excluded.output,"
        " reasoning = reasoning + excluded.reasoning",
        (account, day, requests, tokens.input, tokens.cached, tokens.output, tokens.reasoning),
    )


def _write(conn: sqlite3.Connection, push: Push, writer: str, now: float, version: int) -> None:
    name = push.record.name
    if push.row:
        stored = resolve_write(
            _read_account(conn, name), push.record, push.verdicts, now, push.relogin_file_ns
        )
        conn.execute(
            f"INSERT OR REPLACE INTO accounts ({db.ACCOUNT_COLUMNS}, writer, updated_at,"
            f" version) VALUES ({db.ACCOUNT_MARKS})",
            (*db.account_params(stored), writer, now, version),
        )
    counts = push.counts
    _add_counts(conn, name, counts.day, counts.requests, counts.today)
    # Tokens counted before a day rollover belong to the old day.
    earlier = TokenUsage(
        counts.total.input - counts.today.input,
        counts.total.cached - counts.today.cached,
        counts.total.output - counts.today.output,
        counts.total.reasoning - counts.today.reasoning,
    )
    _add_counts(conn, name, push.old_day if push.old_day >= 0 else counts.day, 0, earlier)


def _counters(conn: sqlite3.Connection, day: int) -> dict[str, Counters]:
    result: dict[str, Counters] = {}
    for account, d, requests, i, c, o, r in conn.execute(
        "SELECT account, day, requests, input, cached, output, reasoning FROM counters"
    ):
        old = result.get(account, Counters(day))
        used = TokenUsage(i, c, o, r)
        today = d == day
        result[account] = Counters(
            day,
            old.requests + (requests if today else 0),
            old.today + (used if today else TokenUsage()),
            old.total + used,
        )
    return result


def exchange(
    conn: sqlite3.Connection,
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
    with db.transaction(conn, write=bool(pushes or pins)):
        version = int(conn.execute("SELECT value FROM meta WHERE key = 'seq'").fetchone()[0])
        if pushes or pins:
            version += 1
            conn.execute("UPDATE meta SET value = ? WHERE key = 'seq'", (version,))
            for push in pushes:
                _write(conn, push, writer, now, version)
            conn.executemany(
                "INSERT INTO pins VALUES (?, ?, ?, ?, ?) ON CONFLICT (provider, key) DO UPDATE"
                " SET account = excluded.account, last_used = excluded.last_used,"
                " version = excluded.version WHERE excluded.last_used > pins.last_used",
                [(p.provider, p.key, p.account, p.last_used, version) for p in pins],
            )
        rows = conn.execute(
            f"SELECT {db.ACCOUNT_COLUMNS} FROM accounts WHERE version > ?", (since,)
        ).fetchall()
        wanted = set(fetch) | {p.record.name for p in pushes}
        for name in wanted:
            row = conn.execute(
                f"SELECT {db.ACCOUNT_COLUMNS} FROM accounts WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                rows.append(row)
        accounts = {s.record.name: s for s in map(db.account_from_row, rows) if s is not None}
        pin_rows = conn.execute(
            "SELECT provider, key, account, last_used FROM pins WHERE version > ?", (since,)
        ).fetchall()
        counters = _counters(conn, int(now // DAY_S))
    pulled_pins = [PinRecord(p, k, a, t) for p, k, a, t in pin_rows if p in PROVIDERS]
    return Pulled(accounts, counters, pulled_pins, version)


def prune_pins(conn: sqlite3.Connection, before: float) -> int:
    """Forget pins idle since before ``before``; how many went."""
    with db.transaction(conn):
        return conn.execute("DELETE FROM pins WHERE last_used < ?", (before,)).rowcount


# -- the refresh lock ------------------------------------------------------------------------


def try_lock(conn: sqlite3.Connection, account: str, holder: str, now: float, ttl_s: float) -> bool:
    """Take ``account``'s refresh lock if it is free, expired, ours, or its holder died."""
    with db.transaction(conn):
        row = conn.execute(
            "SELECT holder, expires_at FROM refresh_locks WHERE account = ?", (account,)
        ).fetchone()
        if row is not None and row[0] != holder and row[1] > now and _alive(row[0]):
            return False
        conn.execute(
            "INSERT OR REPLACE INTO refresh_locks VALUES (?, ?, ?, ?)",
            (account, holder, now, now + ttl_s),
        )
        return True


def _alive(holder: str) -> bool:
    """Whether the process named in ``holder`` ("pid:...") still runs on this host."""
    try:
        pid = int(holder.split(":", 1)[0])
    except ValueError:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def unlock(conn: sqlite3.Connection, account: str, holder: str) -> bool:
    """Release ``account``'s lock if ``holder`` still holds it; True if it did."""
    with db.transaction(conn):
        cursor = conn.execute(
            "DELETE FROM refresh_locks WHERE account = ? AND holder = ?", (account, holder)
        )
        return cursor.rowcount > 0
