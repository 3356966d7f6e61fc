"""Eligibility, scoring and fast mode: which account a new conversation gets."""

from __future__ import annotations

import pytest

from tests.accounts.helpers import (
    FIVE_H,
    T0,
    WEEK,
    exhausted,
    lease,
    make_pool,
    outcome,
    reading,
    serve,
    state_of,
)
from trio_pool.accounts.routing import SWITCH_MARGIN
from trio_pool.providers.base import OutcomeKind, QuotaReading, QuotaWindow

A, B, C = "codex/a", "codex/b", "codex/c"


def test_equal_accounts_rotate_least_recently_used_first() -> None:
    """With nothing to tell them apart, new conversations go round-robin."""
    pool = make_pool("a", "b", "c")
    assert [serve(pool, T0 + i) for i in range(6)] == [A, B, C, A, B, C]


def test_more_headroom_wins() -> None:
    """The account with the least used binding window serves new work."""
    pool = make_pool("a", "b")
    pool.observe(A, reading(0.5), T0)
    pool.observe(B, reading(0.2), T0)
    assert serve(pool, T0 + 1) == B
    assert serve(pool, T0 + 2) == B


def test_the_binding_window_is_the_most_used_one() -> None:
    """A nearly spent weekly window outweighs a fresh five-hour window."""
    pool = make_pool("a", "b")
    pool.observe(
        A, QuotaReading((QuotaWindow("5h", 0.0, FIVE_H), QuotaWindow("7d", 0.9, WEEK))), T0
    )
    pool.observe(
        B, QuotaReading((QuotaWindow("5h", 0.5, FIVE_H), QuotaWindow("7d", 0.5, WEEK))), T0
    )
    assert serve(pool, T0 + 1) == B


def test_in_flight_requests_spread_a_burst() -> None:
    """Concurrent leases on an account make the next new conversation go elsewhere."""
    pool = make_pool("a", "b")
    first = lease(pool.choose("codex", None, T0))
    second = lease(pool.choose("codex", None, T0))
    assert {first.account, second.account} == {A, B}
    assert [v.in_flight for v in pool.accounts(T0)] == [1, 1]


def test_lower_priority_tier_always_wins_while_eligible() -> None:
    """Any eligible account of a better tier wins, however used; overflow only when it is not."""
    pool = make_pool("a", "b")
    pool.set_account(A, "codex", priority=1)
    pool.observe(B, reading(0.97), T0)
    assert serve(pool, T0 + 1) == B
    pool.observe(B, reading(0.98), T0 + 2)
    assert serve(pool, T0 + 3) == A


def test_ceilings_are_98_percent_short_and_99_percent_weekly() -> None:
    """A short window blocks at 98 %, a weekly one at 99 %."""
    pool = make_pool("a")
    pool.observe(A, reading(0.979), T0)
    assert state_of(pool, A, T0) == "ok"
    pool.observe(A, reading(0.98), T0)
    assert state_of(pool, A, T0) == "cooling"
    pool.observe(A, reading(0.0), T0)
    pool.observe(A, reading(0.985, name="7d", window_s=WEEK), T0)
    assert state_of(pool, A, T0) == "ok"
    pool.observe(A, reading(0.99, name="weekly", window_s=None), T0)
    assert state_of(pool, A, T0) == "cooling"


def test_a_window_whose_reset_passed_counts_as_unused() -> None:
    """Never keep a stale reading: once resets_at passes, the window is back to 0 %."""
    pool = make_pool("a")
    pool.observe(A, reading(1.0, resets_at=T0 + 100), T0)
    exhausted(pool.choose("codex", None, T0 + 99))
    assert serve(pool, T0 + 100) == A
    assert [w.used for w in pool.accounts(T0 + 100)[0].windows] == [0.0]


def test_a_reading_without_reset_time_ages_out_after_its_window() -> None:
    """A full window with no reset time blocks at most one window length from when seen."""
    pool = make_pool("a")
    pool.observe(A, reading(1.0, resets_at=None), T0)
    assert pool.next_change("codex", T0) == T0 + FIVE_H
    assert serve(pool, T0 + FIVE_H) == A
    pool.observe(A, reading(1.0, name="mystery", window_s=None), T0 + FIVE_H)
    assert pool.next_change("codex", T0 + FIVE_H) == T0 + FIVE_H + 3600


def test_reset_soon_is_preferred() -> None:
    """Quota about to reset unused is lost: a half-used window resetting in 10 min wins."""
    pool = make_pool("a", "b")
    pool.observe(A, reading(0.5, resets_at=T0 + 600), T0)
    pool.observe(B, reading(0.3, resets_at=T0 + FIVE_H - 600), T0)
    assert serve(pool, T0) == A
    late = make_pool("a", "b")
    late.observe(A, reading(0.5, resets_at=T0 + FIVE_H - 600), T0)
    late.observe(B, reading(0.3, resets_at=T0 + FIVE_H - 600), T0)
    assert serve(late, T0) == B


def test_dormant_account_is_touched_once() -> None:
    """With dormant_touch, a never-started account gets one request to start its clock."""
    for dormant_touch, expected in ((True, [B, A, A]), (False, [A, A, A])):
        pool = make_pool("a", "b", dormant_touch=dormant_touch)
        # a's window resets soon, so on score alone it wins.
        pool.observe(A, reading(0.1, resets_at=T0 + 600), T0)
        pool.observe(B, reading(0.0, resets_at=None), T0)
        assert [serve(pool, T0 + i) for i in range(3)] == expected


def test_dormant_touch_comes_back_after_the_window_ran_out() -> None:
    """Once its window started and then reset, the account is touched again."""
    pool = make_pool("a", "b")
    pool.observe(A, reading(0.1, resets_at=T0 + 600), T0)
    assert serve(pool, T0) == B  # no reading at all: dormant
    pool.observe(B, reading(0.5, resets_at=T0 + 400), T0)
    assert serve(pool, T0 + 1) == A
    pool.observe(A, reading(0.1, resets_at=T0 + 5000), T0 + 401)
    assert serve(pool, T0 + 401) == B  # b's window reset: dormant again


def test_dormant_touch_respects_tiers() -> None:
    """A dormant overflow account is not touched while the primary tier can serve."""
    pool = make_pool("a", "b")
    pool.set_account(B, "codex", priority=1)
    pool.observe(A, reading(0.5, resets_at=T0 + 3600), T0)
    assert serve(pool, T0) == A


def test_early_clear_on_a_fresh_reading_with_room() -> None:
    """A reading that shows room ends a quota cooldown at once (CPA #4724)."""
    pool = make_pool("a")
    pool.report(
        lease(pool.choose("codex", None, T0)), outcome(OutcomeKind.QUOTA, retry_at=T0 + 86400), T0
    )
    pool.observe(A, QuotaReading(), T0 + 10)  # says nothing: no change
    pool.observe(A, reading(0.99), T0 + 20)  # still at the ceiling: no change
    pool.observe(A, reading(0.1, exhausted=True), T0 + 30)  # exhausted: no change
    assert state_of(pool, A, T0 + 40) == "cooling"
    pool.observe(A, reading(0.1, resets_at=T0 + 9000), T0 + 50)
    assert state_of(pool, A, T0 + 50) == "ok"
    assert serve(pool, T0 + 51) == A


def test_exhausted_reading_cools_until_its_reset() -> None:
    """observe() with exhausted=True and a reset time benches the account until then."""
    pool = make_pool("a")
    pool.observe(A, reading(0.5, exhausted=True, reading_resets_at=T0 + 1234), T0)
    view = pool.accounts(T0)[0]
    assert (view.state, view.state_until) == ("cooling", T0 + 1234)


def test_readings_merge_by_window_name() -> None:
    """A reading replaces the windows it names and keeps the others."""
    pool = make_pool("a")
    pool.observe(
        A, QuotaReading((QuotaWindow("5h", 0.2, FIVE_H), QuotaWindow("7d", 0.4, WEEK))), T0
    )
    pool.observe(A, reading(0.3), T0 + 1)
    assert [(w.name, w.used) for w in pool.accounts(T0 + 1)[0].windows] == [
        ("5h", 0.3),
        ("7d", 0.4),
    ]


@pytest.mark.parametrize(
    ("mode", "used", "fast"),
    [("always", 0.9, True), ("off", 0.0, False), ("auto", 0.2, True), ("auto", 0.6, False)],
)
def test_fast_mode(mode: str, used: float, fast: bool) -> None:
    """fast_mode: always / off, or auto only while the account is far from its limit."""
    pool = make_pool("a", fast_mode=mode)
    pool.observe(A, reading(used), T0)
    assert lease(pool.choose("codex", None, T0)).fast is fast


def test_fast_mode_auto_is_off_after_recent_errors_and_never_for_claude() -> None:
    """A recent error turns auto fast mode off; only Codex accounts are ever fast."""
    pool = make_pool("a", fast_mode="always")
    pool.set_account("claude/x", "claude")
    assert not lease(pool.choose("claude", None, T0)).fast
    auto = make_pool("a", fast_mode="auto")
    auto.report(lease(auto.choose("codex", None, T0)), outcome(OutcomeKind.TRANSIENT), T0)
    assert not lease(auto.choose("codex", None, T0 + 5)).fast


def test_switch_margin_is_substantial() -> None:
    """The documented margin keeps pins unless the gap is a quarter of the window or more."""
    assert SWITCH_MARGIN >= 0.2


def test_a_window_named_with_a_zero_length_is_scored_as_one_of_unknown_length() -> None:
    """A window called "0h" with a reset time (a server's odd name) never breaks a choice."""
    pool = make_pool("a", "b")
    odd = QuotaWindow("0h", 0.3, None, T0 + 600)
    pool.observe(A, QuotaReading(windows=(odd,)), T0)
    assert serve(pool, T0 + 1) in (A, B)
