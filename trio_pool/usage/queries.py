"""What the dashboard reads from the ledger: hourly series, totals, recent rows, per user.

Blocking SQL on purpose: run through ``StateStore.run(fn, *args)`` (its worker thread), or
``PgStore.run`` in multi-host mode, where the ledger of every host is in PostgreSQL. The
SQL is written for both engines (``"user"`` quoted, no boolean sums); ``_execute`` turns
the ``?`` placeholders into psycopg's ``%s``. Pure apart from the connection; every time
is passed in.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, Literal, Protocol, TypeVar

from trio_pool.usage.ledger import HOUR_S

T = TypeVar("T")
By = Literal["user", "account", "model", "provider"]
BY_COLUMNS: dict[str, str] = {
    "user": '"user"',
    "account": "account",
    "model": "model",
    "provider": "provider",
}
MAX_SERIES = 12  # the rest is folded into OTHER
OTHER = "other"
# What an empty key column means, per grouping (the rollups store "" for "none").
EMPTY_LABELS: dict[str, str] = {
    "user": "(local)",
    "account": "(none)",
    "model": "(unknown)",
    "provider": "(none)",
}
TOTAL_KEYS = ("requests", "errors", "failovers", "input", "cached", "output", "reasoning")


class LedgerReader(Protocol):
    """Where the ledger is read: ``StateStore`` (state.db) or ``PgStore`` (multi-host)."""

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T: ...


# A sqlite3 or psycopg connection (both have ``execute(sql, params)``).
Connection = Any


def _execute(conn: Connection, sql: str, params: tuple[Any, ...]) -> Any:
    if not isinstance(conn, sqlite3.Connection):
        sql = sql.replace("?", "%s")  # psycopg; no "?" or "%" appears in these statements
    return conn.execute(sql, params)


def hours_between(since_hour: int, until_hour: int) -> list[int]:
    """Every hour start from ``since_hour`` to ``until_hour``, both included."""
    first = since_hour - since_hour % HOUR_S
    return list(range(first, until_hour + 1, HOUR_S))


def usage_series(
    conn: Connection, since_hour: int, until_hour: int, by: str, user: str | None = None
) -> dict[str, Any]:
    """GET /api/usage: per-hour requests and tokens (input + output) per ``by`` value,
    zero-filled, largest first, at most MAX_SERIES series. ``user``: only that user's rows
    (what a plain user may see of the ledger)."""
    column = BY_COLUMNS[by]  # a KeyError here is a caller bug: the API checks ``by``
    hours = hours_between(since_hour, until_hour)
    index = {hour: i for i, hour in enumerate(hours)}
    mine = "" if user is None else ' AND "user" = ?'
    params: tuple[Any, ...] = (hours[0] if hours else since_hour, until_hour)
    params += () if user is None else (user,)
    found = _execute(
        conn,
        f"SELECT {column}, hour, SUM(requests), SUM(input + output) FROM usage_hourly "
        f"WHERE hour >= ? AND hour <= ?{mine} GROUP BY 1, 2",
        params,
    ).fetchall()
    series: dict[str, tuple[list[int], list[int]]] = {}
    for key, hour, requests, tokens in found:
        label = key or EMPTY_LABELS[by]
        requests_by_hour, tokens_by_hour = series.setdefault(
            label, ([0] * len(hours), [0] * len(hours))
        )
        i = index.get(int(hour))
        if i is not None:
            requests_by_hour[i] += int(requests or 0)
            tokens_by_hour[i] += int(tokens or 0)
    ranked = sorted(series.items(), key=lambda item: (-sum(item[1][1]), -sum(item[1][0]), item[0]))
    if len(ranked) > MAX_SERIES:
        rest = ranked[MAX_SERIES - 1 :]
        folded = (
            [sum(r[1][0][i] for r in rest) for i in range(len(hours))],
            [sum(r[1][1][i] for r in rest) for i in range(len(hours))],
        )
        ranked = [*ranked[: MAX_SERIES - 1], (OTHER, folded)]
    totals = _execute(
        conn,
        "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(errors), 0), "
        "COALESCE(SUM(failovers), 0), COALESCE(SUM(input), 0), COALESCE(SUM(cached), 0), "
        "COALESCE(SUM(output), 0), COALESCE(SUM(reasoning), 0) FROM usage_hourly "
        f"WHERE hour >= ? AND hour <= ?{mine}",
        params,
    ).fetchone()
    return {
        "by": by,
        "hours": hours,
        "series": [
            {"label": label, "requests": requests, "tokens": tokens}
            for label, (requests, tokens) in ranked
        ],
        "totals": dict(zip(TOTAL_KEYS, (int(v) for v in totals), strict=True)),
    }


def empty_series(since_hour: int, until_hour: int, by: str) -> dict[str, Any]:
    """The /api/usage document when there is no ledger: the hours, no series, zero totals."""
    return {
        "by": by,
        "hours": hours_between(since_hour, until_hour),
        "series": [],
        "totals": dict.fromkeys(TOTAL_KEYS, 0),
    }


def totals_since(conn: Connection, since: float) -> dict[str, int]:
    """Requests, tokens (input + output), errors and failovers of the rows since ``since``
    (exact to the second, unlike the hourly rollups)."""
    row = _execute(
        conn,
        "SELECT COUNT(*), COALESCE(SUM(input + output), 0), "
        "COALESCE(SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN status < 400 AND attempts > 1 THEN attempts - 1 ELSE 0 END), 0) "
        "FROM usage WHERE at >= ?",
        (since,),
    ).fetchone()
    requests, tokens, errors, failovers = (int(v) for v in row)
    return {"requests": requests, "tokens": tokens, "errors": errors, "failovers": failovers}


def recent_rows(conn: Connection, limit: int, user: str | None = None) -> list[dict[str, Any]]:
    """The newest ``limit`` ledger rows as live "end" documents, newest first (``user``:
    only that user's).

    The ledger keeps no path, so ``path`` is null; ``id`` is the row's negated rowid, so it
    never collides with the live feed's (positive) ids.
    """
    mine = "" if user is None else 'WHERE "user" = ? '
    params: tuple[Any, ...] = (() if user is None else (user,)) + (max(0, limit),)
    found = _execute(
        conn,
        'SELECT id, at, "user", provider,'
        " account, model, status, attempts, failures, ttfb_ms, "
        f"duration_ms, input, cached, output, reasoning, bytes FROM usage {mine}"
        "ORDER BY at DESC, id DESC LIMIT ?",
        params,
    ).fetchall()
    documents = []
    for (rowid, at, user, provider, account, model, status, attempts, failures, ttfb,
         duration, n_in, cached, n_out, reasoning, size) in found:  # fmt: skip
        documents.append(
            {
                "id": -int(rowid),
                "at": at,
                "provider": provider,
                "user": user,
                "model": model,
                "path": None,
                "account": account,
                "status": status,
                "attempts": attempts,
                "failures": _failures(failures),
                "ttfb_ms": ttfb,
                "duration_ms": duration,
                "input": n_in,
                "cached": cached,
                "output": n_out,
                "reasoning": reasoning,
                "bytes": size,
            }
        )
    return documents


def _failures(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


def user_usage(conn: Connection, since: float) -> dict[str, tuple[int, int]]:
    """Per user ("" for local, no-key requests): (requests, tokens) since ``since``."""
    found = _execute(
        conn,
        "SELECT COALESCE(\"user\", ''), COUNT(*)"
        ", COALESCE(SUM(input + output), 0) FROM usage "
        "WHERE at >= ? GROUP BY 1",
        (since,),
    ).fetchall()
    return {user: (int(requests), int(tokens)) for user, requests, tokens in found}
