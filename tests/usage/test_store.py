"""The ledger's store and buffer without a proxy: rollups, retention, overflow, shutdown."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_pool import clock
from trio_pool.providers.base import TokenUsage
from trio_pool.state.db import migrate
from trio_pool.state.store import StateStore
from trio_pool.usage.ledger import (
    HOUR_S,
    LedgerBuffer,
    LedgerRow,
    RollupKey,
    failure_text,
    model_of,
    rollup,
)
from trio_pool.usage.store import (
    DAY_S,
    INSERT_CHUNK,
    Ledger,
    chunk_sizes,
    insert_rows,
    read_rollups,
    read_rows,
)

T0 = 1_700_000_000.0 - 1_700_000_000.0 % HOUR_S


def row(at: float, *, account: str = "claude/a", status: int = 200, output: int = 5) -> LedgerRow:
    return LedgerRow(
        at=at,
        provider="claude",
        account=account,
        model="m",
        conversation=None,
        status=status,
        attempts=1,
        failures=(),
        ttfb_ms=1.0,
        duration_ms=2.0,
        usage=TokenUsage(10, 4, output, 1),
        bytes=100,
    )


async def test_rollups_in_the_db_sum_the_rows_per_hour(tmp_path: Path) -> None:
    """Rows written in two batches roll up like the pure rollup of all of them."""
    rows = [row(T0 + i * 600, status=200 if i % 3 else 429) for i in range(12)]
    rows.append(row(T0, account="claude/b"))
    store = await StateStore.open(tmp_path)
    try:
        await store.run(insert_rows, rows[:5])
        await store.run(insert_rows, rows[5:])
        stored = await store.run(read_rollups)
        assert await store.run(read_rows) == rows
    finally:
        await store.aclose()
    assert stored == rollup(rows)
    first = stored[RollupKey("claude", "claude/a", "m", "", int(T0))]
    assert first.requests == 6
    assert first.errors == 2
    assert first.usage == TokenUsage(60, 24, 30, 6)
    assert sum(t.requests for t in stored.values()) == 13


async def test_retention_deletes_rows_and_hours_past_it(tmp_path: Path) -> None:
    """Rows older than ledger_retention_days go, with their whole hours of rollups."""
    now = T0 + 100 * DAY_S
    rows = [row(now - 91 * DAY_S), row(now - 89 * DAY_S), row(now - 60)]
    store = await StateStore.open(tmp_path)
    try:
        await store.run(insert_rows, rows)
        await Ledger(retention_days=90).prune(store, now)
        assert await store.run(read_rows) == rows[1:]
        assert set(await store.run(read_rollups)) == set(rollup(rows[1:]))
    finally:
        await store.aclose()


async def test_a_full_buffer_drops_rows_counts_them_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stalled disk costs rows, never a wait: drops are counted and logged one time."""
    ledger = Ledger(retention_days=90, buffer=LedgerBuffer(limit=2))
    with caplog.at_level(logging.WARNING, logger="trio_pool.usage"):
        for i in range(5):
            ledger.record(row(T0 + i))
    assert len(ledger.buffer) == 2
    assert ledger.dropped == 3
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert len(caplog.records) == 1


def test_put_back_keeps_order_and_the_limit() -> None:
    """A failed batch goes back ahead of newer rows; what does not fit is counted dropped."""
    buffer = LedgerBuffer(limit=3)
    rows = [row(T0 + i) for i in range(3)]
    for r in rows:
        buffer.append(r)
    batch = buffer.take(2)
    buffer.append(row(T0 + 9))
    buffer.put_back(batch)
    assert buffer.take(10) == [rows[0], rows[2], row(T0 + 9)]
    assert buffer.dropped == 1


async def test_the_service_flushes_on_its_own_and_on_cancel(
    tmp_path: Path, autojump_clock: trio.abc.Clock
) -> None:
    """Rows reach the disk within a flush period, and the rest when the service stops."""
    ledger = Ledger(retention_days=90)
    store = await StateStore.open(tmp_path)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(ledger.serve, store)
            ledger.record(row(clock.now()))  # recent: the service's pruning keeps it
            await trio.sleep(1.5)
            assert len(await store.run(read_rows)) == 1
            ledger.record(row(clock.now()))
            nursery.cancel_scope.cancel()
        assert len(await store.run(read_rows)) == 2
    finally:
        await store.aclose()


def test_model_comes_from_the_body_or_the_path() -> None:
    """The body's "model" key wins; a Gemini path names it otherwise; else unknown."""
    assert model_of(b'{"input": "x", "model" : "gpt-5"}', "/v1/responses") == "gpt-5"
    assert model_of(b"{}", "/v1beta/models/gemini-2.5-pro:generateContent") == "gemini-2.5-pro"
    assert model_of(b"not json", "/v1/messages") is None


def test_failure_reasons_are_redacted_and_short() -> None:
    """A reason quoting a token keeps only its masked form."""
    token = "sk-ant-oat01-" + "x" * 40
    text = failure_text("claude/a", f"401 for Bearer {token} " + "y" * 500)
    assert token not in text
    assert text.startswith("claude/a: ")
    assert len(text) <= 160


rows_strategy = st.lists(
    st.builds(
        LedgerRow,
        at=st.integers(0, 3 * HOUR_S).map(lambda s: T0 + s + 0.25),
        provider=st.sampled_from(["claude", "codex"]),
        account=st.sampled_from([None, "a", "b"]),
        model=st.sampled_from([None, "m"]),
        conversation=st.sampled_from([None, "0123456789abcdef"]),
        status=st.sampled_from([200, 400, 429, 499, 502]),
        attempts=st.integers(0, 4),
        failures=st.lists(st.sampled_from(["a: 429", 'b: "quoted"']), max_size=2).map(tuple),
        ttfb_ms=st.sampled_from([None, 1.5]),
        duration_ms=st.just(2.0),
        usage=st.builds(TokenUsage, *[st.integers(0, 10**6)] * 4),
        bytes=st.integers(0, 10**6),
        user=st.sampled_from([None, "ann"]),
    ),
    max_size=150,
)


@settings(max_examples=60, deadline=None)
@given(rows=rows_strategy, cut=st.integers(0, 150))
def test_batched_inserts_keep_every_row_and_sum_like_the_pure_rollup(
    rows: list[LedgerRow], cut: int
) -> None:
    """Rows written in batches of any size (several INSERT chunks) read back as written,
    and SQLite's rollups equal ledger.rollup() of all of them."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn)
        insert_rows(conn, rows[:cut])
        insert_rows(conn, rows[cut:])
        assert read_rows(conn) == rows
        assert read_rollups(conn) == rollup(rows)
    finally:
        conn.close()


async def test_a_flush_counts_rows_and_cpu_and_a_failed_one_keeps_the_rows(
    tmp_path: Path,
) -> None:
    """What a flush wrote is counted; when the store fails, the batch stays buffered."""
    ledger = Ledger(retention_days=90)
    rows = [row(T0 + i) for i in range(INSERT_CHUNK + 7)]
    for r in rows:
        ledger.record(r)
    store = await StateStore.open(tmp_path)
    try:
        assert await ledger.flush(store) == len(rows)
        assert await store.run(read_rows) == rows
    finally:
        await store.aclose()
    assert ledger.rows_written == len(rows)
    assert ledger.write_cpu_s >= 0.0
    ledger.record(row(T0 + 99))
    assert await ledger.flush(store) == 0  # closed: StateError, logged
    assert ledger.buffer.take(10) == [row(T0 + 99)]


def test_inserts_use_few_distinct_statements() -> None:
    """Any batch is cut into full chunks and powers of two: at most seven statement shapes."""
    for rows in range(1001):
        sizes = chunk_sizes(rows)
        assert sum(sizes) == rows
        assert set(sizes) <= {INSERT_CHUNK, 32, 16, 8, 4, 2, 1}
