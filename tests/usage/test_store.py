"""The ledger's store and buffer without a proxy: rollups, retention, overflow, shutdown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import trio

from trio_pool import clock
from trio_pool.providers.base import TokenUsage
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
from trio_pool.usage.store import DAY_S, Ledger, insert_rows, read_rollups, read_rows

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
