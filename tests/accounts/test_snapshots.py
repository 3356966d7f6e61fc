"""Account views, token counters, settings updates and the pool's aggregate usage."""

from __future__ import annotations

from tests.accounts.helpers import FIVE_H, T0, WEEK, key, lease, make_pool, outcome, reading, serve
from trio_pool.accounts.model import DAY_S, PoolWindowUsage
from trio_pool.providers.base import OutcomeKind, QuotaReading, QuotaWindow, TokenUsage

A, B, C = "codex/a", "codex/b", "codex/c"


def test_view_reports_counters_and_pins() -> None:
    """A view carries requests and tokens today, in-flight, last use and pin count."""
    pool = make_pool("a", "b")
    pool.set_account(A, "codex", priority=2, plan="pro")
    serve(pool, T0, key("one"))
    held = lease(pool.choose("codex", key("two"), T0 + 1, exclude=frozenset({B})))
    pool.record_usage(A, TokenUsage(input=100, cached=40, output=7), T0 + 1)
    pool.record_usage(A, TokenUsage(input=10, output=3, reasoning=1), T0 + 2)
    view = next(v for v in pool.accounts(T0 + 2) if v.name == A)
    assert (view.provider, view.plan, view.priority, view.state) == ("codex", "pro", 2, "ok")
    assert (view.in_flight, view.requests_today, view.last_used) == (1, 1, T0 + 1)
    assert view.tokens_today == TokenUsage(input=110, cached=40, output=10, reasoning=1)
    assert view.pinned_conversations == 1
    assert held.account == A


def test_today_counters_roll_over_at_utc_midnight() -> None:
    """requests_today and tokens_today restart each UTC day; the total keeps counting."""
    pool = make_pool("a")
    serve(pool, T0)
    pool.record_usage(A, TokenUsage(input=5), T0)
    tomorrow = (T0 // DAY_S + 1) * DAY_S
    view = pool.accounts(tomorrow)[0]
    assert (view.requests_today, view.tokens_today) == (0, TokenUsage())
    pool.record_usage(A, TokenUsage(input=2), tomorrow)
    view = pool.accounts(tomorrow)[0]
    assert (view.tokens_today, view.tokens_total) == (TokenUsage(input=2), TokenUsage(input=7))


def test_set_account_keeps_learned_state() -> None:
    """Updating settings keeps windows, cooldowns and pins; disabling takes it out."""
    pool = make_pool("a", "b")
    assert serve(pool, T0, key("conv")) == A
    pool.observe(A, reading(0.4), T0)
    pool.report(
        lease(pool.choose("codex", None, T0, exclude=frozenset({A}))),
        outcome(OutcomeKind.QUOTA, retry_at=T0 + 500),
        T0,
    )
    pool.set_account(A, "codex", priority=1)
    pool.set_account(B, "codex", priority=0)
    views = {v.name: v for v in pool.accounts(T0 + 1)}
    assert [w.used for w in views[A].windows] == [0.4]
    assert views[B].state_until == T0 + 500
    assert pool.pinned_account("codex", "conv", T0 + 1) == A
    pool.set_account(A, "codex", disabled=True)
    assert next(v for v in pool.accounts(T0 + 1) if v.name == A).state == "disabled"


def test_changing_an_accounts_provider_starts_afresh() -> None:
    """The same name under another provider is a new account (no learned state, no pins)."""
    pool = make_pool("a")
    pool.observe(A, reading(0.5), T0)
    pool.set_account(A, "claude")
    view = pool.accounts(T0)[0]
    assert (view.provider, view.windows) == ("claude", ())


def test_pool_usage_is_the_mean_over_usable_accounts() -> None:
    """wham/usage numbers: mean used per window (reset windows as 0), earliest future reset."""
    pool = make_pool("a", "b", "c", "d")
    pool.set_account("codex/d", "codex", disabled=True)
    pool.observe(
        A,
        QuotaReading(
            (QuotaWindow("5h", 0.9, FIVE_H, T0 + 100), QuotaWindow("7d", 0.3, WEEK, T0 + 9000))
        ),
        T0,
    )
    pool.observe(B, QuotaReading((QuotaWindow("5h", 0.6, FIVE_H, T0 + 50),), plan="plus"), T0)
    pool.observe("codex/d", reading(1.0, resets_at=T0 + 1), T0)
    usage = pool.pool_usage("codex", T0 + 60)
    assert usage.accounts == 3
    assert usage.available
    assert usage.plan == "plus"
    assert usage.windows == (
        PoolWindowUsage("5h", (0.9 + 0.0) / 3, FIVE_H, T0 + 100),
        PoolWindowUsage("7d", 0.3 / 3, WEEK, T0 + 9000),
    )


def test_pool_usage_reports_unavailable_when_all_are_cooling() -> None:
    """available is False when no account could take a request now."""
    pool = make_pool("a")
    pool.observe(A, reading(1.0, resets_at=T0 + 100), T0)
    usage = pool.pool_usage("codex", T0)
    assert not usage.available
    assert usage.windows[0].used == 1.0
