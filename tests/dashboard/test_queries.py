"""The dashboard's ledger queries against a real state.db (schema 3), explicit times."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from trio_pool.providers.base import TokenUsage
from trio_pool.state.db import connect
from trio_pool.usage.ledger import LedgerRow
from trio_pool.usage.queries import (
    MAX_SERIES,
    empty_series,
    recent_rows,
    totals_since,
    usage_series,
    user_usage,
)
from trio_pool.usage.store import insert_rows

H = 3600
T0 = 1_800_000_000 - 1_800_000_000 % H  # an hour start
USAGE = TokenUsage(10, 2, 5, 1)


def row(
    at: float,
    *,
    user: str | None = None,
    provider: str = "claude",
    account: str | None = "claude/a",
    model: str | None = "m",
    status: int = 200,
    attempts: int = 1,
    usage: TokenUsage = USAGE,
) -> LedgerRow:
    return LedgerRow(
        at=at,
        provider=provider,
        account=account,
        model=model,
        conversation=None,
        status=status,
        attempts=attempts,
        failures=("x: quota",) if attempts > 1 else (),
        ttfb_ms=1.0,
        duration_ms=2.0,
        usage=usage,
        bytes=100,
        user=user,
    )


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    db = connect(tmp_path / "state.db")
    yield db
    db.close()


def test_series_are_zero_filled_per_hour_with_local_label(conn: sqlite3.Connection) -> None:
    """Every hour of the range has a value; rows without a user are labelled "(local)"."""
    insert_rows(conn, [row(T0 + 10), row(T0 + 20), row(T0 + 2 * H + 5, user="ann")])
    doc = usage_series(conn, T0, T0 + 3 * H, "user")
    assert doc["by"] == "user"
    assert doc["hours"] == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    series = {s["label"]: s for s in doc["series"]}
    assert series["(local)"]["requests"] == [2, 0, 0, 0]
    assert series["(local)"]["tokens"] == [30, 0, 0, 0]
    assert series["ann"]["requests"] == [0, 0, 1, 0]
    assert doc["totals"] == {
        "requests": 3,
        "errors": 0,
        "failovers": 0,
        "input": 30,
        "cached": 6,
        "output": 15,
        "reasoning": 3,
    }


def test_series_outside_the_range_are_left_out(conn: sqlite3.Connection) -> None:
    """Hours before the range count neither in series nor totals."""
    insert_rows(conn, [row(T0 - H), row(T0 + 5, provider="codex", account="codex/a")])
    doc = usage_series(conn, T0, T0 + H, "provider")
    assert [s["label"] for s in doc["series"]] == ["codex"]
    assert doc["totals"]["requests"] == 1


def test_many_series_fold_into_other(conn: sqlite3.Connection) -> None:
    """Past MAX_SERIES labels, the smallest are summed into "other"; the largest lead."""
    rows = [row(T0 + i, user=f"u{i:02d}", usage=TokenUsage(100 + i, 0, 0, 0)) for i in range(20)]
    insert_rows(conn, rows)
    doc = usage_series(conn, T0, T0, "user")
    labels = [s["label"] for s in doc["series"]]
    assert len(labels) == MAX_SERIES
    assert labels[0] == "u19"
    assert labels[-1] == "other"
    assert sum(s["requests"][0] for s in doc["series"]) == 20
    assert sum(s["tokens"][0] for s in doc["series"]) == sum(100 + i for i in range(20))


def test_errors_and_absorbed_failovers_are_totalled(conn: sqlite3.Connection) -> None:
    """Errors are status >= 400; failovers are failed attempts before a good answer."""
    insert_rows(conn, [row(T0, attempts=3), row(T0 + 1, status=429, attempts=4)])
    totals = totals_since(conn, T0)
    assert totals == {"requests": 2, "tokens": 30, "errors": 1, "failovers": 2}
    assert usage_series(conn, T0, T0, "account")["totals"]["failovers"] == 2


def test_totals_since_is_exact_to_the_second(conn: sqlite3.Connection) -> None:
    """Rows before ``since`` do not count even inside the same hour."""
    insert_rows(conn, [row(T0 + 10), row(T0 + 20)])
    assert totals_since(conn, T0 + 15)["requests"] == 1
    assert totals_since(conn, T0 + 30) == {
        "requests": 0,
        "tokens": 0,
        "errors": 0,
        "failovers": 0,
    }


def test_recent_rows_are_newest_first_as_live_documents(conn: sqlite3.Connection) -> None:
    """Recent rows come newest first, shaped like live "end" documents, negative ids."""
    insert_rows(conn, [row(T0 + i, user="ann" if i else None, attempts=1 + i) for i in range(3)])
    docs = recent_rows(conn, 2)
    assert [d["at"] for d in docs] == [T0 + 2, T0 + 1]
    assert all(d["id"] < 0 for d in docs)
    assert docs[0]["failures"] == ["x: quota"]
    assert docs[0]["path"] is None
    assert (docs[0]["input"], docs[0]["output"], docs[0]["user"]) == (10, 5, "ann")


def test_user_usage_counts_requests_and_tokens_per_user(conn: sqlite3.Connection) -> None:
    """Per user since ``since``: (requests, input + output tokens); "" for local requests."""
    insert_rows(conn, [row(T0, user="ann"), row(T0 + 1, user="ann"), row(T0 + 2), row(T0 - 5)])
    assert user_usage(conn, T0) == {"ann": (2, 30), "": (1, 15)}


def test_empty_series_has_hours_and_zero_totals() -> None:
    """Without a ledger the document still lists the hours."""
    doc = empty_series(T0, T0 + 2 * H, "model")
    assert doc["hours"] == [T0, T0 + H, T0 + 2 * H]
    assert doc["series"] == []
    assert set(doc["totals"].values()) == {0}
