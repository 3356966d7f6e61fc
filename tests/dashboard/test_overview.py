"""The overview's pooled use, burn rate and run-out time, from explicit ``now`` values."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_pool.accounts.model import PoolUsage, PoolWindowUsage
from trio_pool.accounts.pool import Pool
from trio_pool.config import RoutingConfig
from trio_pool.dashboard.overview import overview_document, runs_out_at
from trio_pool.providers.base import PROVIDERS, QuotaReading, QuotaWindow
from trio_pool.usage.burn import BurnHistory, slope

T0 = 1_800_000_000.0
H = 3600.0


def _usage(used: float, resets_at: float | None = T0 + 5 * H) -> PoolUsage:
    window = PoolWindowUsage("5h", used, 5 * H, resets_at)
    return PoolUsage("claude", (window,), accounts=2, available=True, plan=None)


def _feed(history: BurnHistory, points: list[tuple[float, float]]) -> None:
    for at, used in points:
        history.observe(_usage(used), at)


def test_rate_is_the_slope_over_the_last_hour() -> None:
    """Use growing 10 %-points per hour reads as a rate of 10 %/h."""
    history = BurnHistory()
    _feed(history, [(T0 + i * 60, 0.2 + 0.1 * i / 60) for i in range(61)])
    rate = history.rate("claude", "5h", T0 + H)
    assert rate == pytest.approx(10.0)


def test_rate_needs_a_few_minutes_of_history() -> None:
    """Two samples a minute apart give no rate yet (too noisy to show)."""
    history = BurnHistory()
    _feed(history, [(T0, 0.2), (T0 + 60, 0.3)])
    assert history.rate("claude", "5h", T0 + 60) is None
    assert history.rate("claude", "7d", T0 + 60) is None


def test_a_reset_restarts_the_history() -> None:
    """A drop in pooled use (a window reset) discards the samples before it."""
    history = BurnHistory()
    _feed(history, [(T0 + i * 60, 0.5 + 0.01 * i) for i in range(30)])
    _feed(history, [(T0 + 30 * 60, 0.1), (T0 + 32 * 60, 0.11)])
    assert history.rate("claude", "5h", T0 + 32 * 60) is None


def test_a_later_reset_time_restarts_the_history() -> None:
    """The earliest reset moving later (that account reset) also starts a fresh history."""
    history = BurnHistory()
    history.observe(_usage(0.2, T0 + H), T0)
    history.observe(_usage(0.3, T0 + H), T0 + 600)
    history.observe(_usage(0.3, T0 + 4 * H), T0 + 700)
    assert history.rate("claude", "5h", T0 + 700) is None


def test_old_samples_leave_the_history() -> None:
    """Only the last hour counts: an early steep climb does not skew a flat hour."""
    history = BurnHistory()
    _feed(history, [(T0, 0.0), (T0 + 600, 0.5)])
    _feed(history, [(T0 + 2 * H + i * 300, 0.5) for i in range(13)])
    assert history.rate("claude", "5h", T0 + 3 * H) == pytest.approx(0.0)


def test_runs_out_at_pace_before_reset() -> None:
    """At 10 %/h, 50 % used with a 98 % limit runs out in 4.8 h."""
    assert runs_out_at(50.0, 98.0, 10.0, T0 + 10 * H, T0) == pytest.approx(T0 + 4.8 * H)


@pytest.mark.parametrize(
    ("rate", "resets_at"),
    [(None, None), (0.0, None), (-3.0, None), (10.0, T0 + H)],
)
def test_runs_out_at_is_null_when_it_would_not(rate: float | None, resets_at: float | None) -> None:
    """No rate, a flat or falling rate, or a reset before the pool runs dry: null."""
    assert runs_out_at(50.0, 98.0, rate, resets_at, T0) is None


@settings(max_examples=100, deadline=None)
@given(
    st.floats(0, 100),
    st.floats(0.01, 1000),
    st.one_of(st.none(), st.floats(0, 1e6)),
)
def test_runs_out_at_never_after_reset_nor_before_now(
    used: float, rate: float, reset_in: float | None
) -> None:
    """Whenever a run-out time is given, it lies between now and the reset."""
    resets_at = None if reset_in is None else T0 + reset_in
    at = runs_out_at(used, 98.0, rate, resets_at, T0)
    if at is not None:
        assert at >= T0
        assert resets_at is None or at < resets_at


def test_slope_of_flat_x_is_zero() -> None:
    """Points with one x value have no slope (no division by zero)."""
    assert slope([(1.0, 2.0), (1.0, 5.0)]) == 0.0


def test_overview_document_from_a_pool() -> None:
    """Per provider: account counts, pooled mean use, left, earliest reset, and the rate."""
    pool = Pool(RoutingConfig())
    for name in ("claude/a", "claude/b"):
        pool.set_account(name, "claude")
    pool.set_account("codex/x", "codex", disabled=True)
    reading_a = QuotaReading((QuotaWindow("5h", 0.6, 5 * H, T0 + 2 * H),))
    reading_b = QuotaReading((QuotaWindow("5h", 0.2, 5 * H, T0 + 3 * H),))
    pool.observe("claude/a", reading_a, T0)
    pool.observe("claude/b", reading_b, T0)
    history = BurnHistory()
    history.add("claude", "5h", 0.3, T0 + 2 * H, T0 - 1800)
    usages = {p: pool.pool_usage(p, T0) for p in PROVIDERS}
    history.observe(usages["claude"], T0)
    doc = overview_document(usages, pool.accounts(T0), history, {"requests": 3}, T0)
    assert [p["provider"] for p in doc["providers"]] == list(PROVIDERS)
    by = {p["provider"]: p for p in doc["providers"]}
    claude = by["claude"]
    assert (claude["accounts"], claude["usable"]) == (2, 2)
    (window,) = claude["windows"]
    assert window["used_pct"] == pytest.approx(40.0)
    assert window["left_pct"] == pytest.approx(60.0)
    assert window["resets_at"] == T0 + 2 * H
    assert window["rate_pct_per_h"] == pytest.approx(20.0)
    # 40 % -> 98 % at 20 %/h takes 2.9 h: after the 2 h reset, so no run-out time.
    assert window["runs_out_at"] is None
    assert (by["codex"]["accounts"], by["codex"]["usable"], by["codex"]["windows"]) == (1, 0, [])
    assert doc["last_24h"] == {"requests": 3, "tokens": 0, "errors": 0, "failovers": 0}
    assert doc["now"] == T0
