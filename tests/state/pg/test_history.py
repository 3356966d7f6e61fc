"""The dashboard's ledger reads on PostgreSQL: every query of ``usage/queries.py`` answers
the same for the same rows as on state.db (so the charts and ``users list`` work in
multi-host mode, over every host's rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from tests.state.pg.helpers import migrated
from trio_pool.providers.base import TokenUsage
from trio_pool.state.db import connect as sqlite_connect
from trio_pool.state.db import migrate as sqlite_migrate
from trio_pool.usage import pg_ledger as ledger
from trio_pool.usage import queries
from trio_pool.usage.ledger import HOUR_S, LedgerRow, hour_of
from trio_pool.usage.store import insert_rows

NOW = 1_800_000_000.0


def _rows() -> list[LedgerRow]:
    base = LedgerRow(
        at=NOW,
        provider="codex",
        account="codex/a",
        model="gpt-5",
        conversation=None,
        status=200,
        attempts=1,
        failures=(),
        ttfb_ms=12.5,
        duration_ms=40.0,
        usage=TokenUsage(100, 10, 20, 5),
        bytes=300,
    )
    return [
        base,
        attrs.evolve(base, at=NOW - 5400, user="ann", status=500, attempts=3, failures=("x",)),
        attrs.evolve(base, at=NOW - 7200, user="bob", provider="claude", account="claude/a"),
        attrs.evolve(base, at=NOW - 30 * 3600, user="ann", model=None),
    ]


def _answers(conn: Any) -> list[Any]:
    until = hour_of(NOW)
    since = until - 23 * HOUR_S
    return [
        queries.usage_series(conn, since, until, by)
        for by in ("provider", "account", "model", "user")
    ] + [
        queries.usage_series(conn, since, until, "model", "ann"),
        queries.totals_since(conn, NOW - 86400),
        [{k: v for k, v in r.items() if k != "id"} for r in queries.recent_rows(conn, 10)],
        [{k: v for k, v in r.items() if k != "id"} for r in queries.recent_rows(conn, 10, "ann")],
        queries.user_usage(conn, NOW - 86400),
    ]


def test_the_ledger_queries_answer_alike_on_both_engines(pg_url: str, tmp_path: Path) -> None:
    """Series (by each grouping, and one user's), totals, recent rows and per-user counts
    are equal on state.db and on PostgreSQL for the same rows."""
    lite = sqlite_connect(tmp_path / "state.db")
    sqlite_migrate(lite)
    insert_rows(lite, _rows())
    with migrated(pg_url) as pg:
        ledger.insert(pg, [(f"uid-{i}", row) for i, row in enumerate(_rows())], "host")
        on_pg = _answers(pg)
    on_sqlite = _answers(lite)
    assert on_pg == on_sqlite
    assert on_pg[5]["requests"] == 3
    assert on_pg[-1] == {"": (1, 120), "ann": (1, 120), "bob": (1, 120)}
