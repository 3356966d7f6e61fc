"""Each row of design.md §3.2, and §3.4 (every account busy), with explicit times."""

from __future__ import annotations

from tests.accounts.helpers import (
    FIVE_H,
    T0,
    exhausted,
    lease,
    make_pool,
    outcome,
    reading,
    serve,
    state_of,
)
from trio_pool.accounts.model import iso
from trio_pool.providers.base import OutcomeKind, QuotaReading, QuotaWindow

A, B = "codex/a", "codex/b"


def test_ok_applies_the_quota_reading_and_clears_backoff() -> None:
    """A 2xx updates the windows from its reading and ends a short backoff."""
    pool = make_pool("a")
    first = lease(pool.choose("codex", None, T0))
    pool.report(first, outcome(OutcomeKind.THROTTLED, status=429), T0)
    assert state_of(pool, A, T0 + 1) == "backoff"
    second = lease(pool.choose("codex", None, T0 + 3))
    pool.report(second, outcome(OutcomeKind.THROTTLED, status=429), T0 + 3)
    third = lease(pool.choose("codex", None, T0 + 10))
    pool.report(third, outcome(OutcomeKind.OK, status=200, quota=reading(0.4)), T0 + 10)
    view = pool.accounts(T0 + 10)[0]
    assert view.state == "ok"
    assert [(w.name, w.used) for w in view.windows] == [("5h", 0.4)]
    assert view.in_flight == 0


def test_quota_429_cools_until_the_given_time_and_fails_over() -> None:
    """A quota 429 benches the account exactly until the upstream's reset; others serve."""
    pool = make_pool("a", "b")
    first = lease(pool.choose("codex", None, T0))
    assert first.account == A
    retry_at = T0 + 7200
    pool.report(
        first,
        outcome(OutcomeKind.QUOTA, status=429, reason="usage_limit_reached", retry_at=retry_at),
        T0,
    )
    assert lease(pool.choose("codex", None, T0 + 1, exclude=frozenset({A}))).account == B
    for now in (T0 + 10, T0 + 3600, retry_at - 0.001):
        assert serve(pool, now) == B
    view = next(v for v in pool.accounts(T0 + 10) if v.name == A)
    assert view.state == "cooling"
    assert view.state_until == retry_at
    assert view.state_reason == f"cooling until {iso(retry_at)} (usage_limit_reached)"
    assert state_of(pool, A, retry_at) == "ok"


def test_quota_429_uses_the_latest_time_given() -> None:
    """With several reset times (retry_at, reading, exhausted window) the latest one wins."""
    pool = make_pool("a")
    chosen = lease(pool.choose("codex", None, T0))
    quota = QuotaReading(
        windows=(QuotaWindow("5h", 1.0, FIVE_H, T0 + 900),),
        exhausted=True,
        resets_at=T0 + 600,
    )
    pool.report(chosen, outcome(OutcomeKind.QUOTA, retry_at=T0 + 300, quota=quota), T0)
    assert pool.next_change("codex", T0) == T0 + 900
    exhausted(pool.choose("codex", None, T0 + 899))
    assert lease(pool.choose("codex", None, T0 + 900)).account == A


def test_quota_429_without_a_time_uses_a_doubling_fallback() -> None:
    """No reset time at all: 5 min, then 10, 20, ... capped at 1 h, and status says so."""
    pool = make_pool("a")
    now = T0
    for expected in (300, 600, 1200, 2400, 3600, 3600):
        chosen = lease(pool.choose("codex", None, now))
        pool.report(
            chosen, outcome(OutcomeKind.QUOTA, status=429, reason="usage_limit_reached"), now
        )
        view = pool.accounts(now)[0]
        assert view.state_until == now + expected
        assert "no reset time given" in view.state_reason
        exhausted(pool.choose("codex", None, now + expected - 1))
        now += expected


def test_quota_fallback_resets_after_a_success() -> None:
    """A success ends the streak of timeless quota 429s, so the next fallback is 5 min again."""
    pool = make_pool("a")
    for now in (T0, T0 + 300):
        pool.report(lease(pool.choose("codex", None, now)), outcome(OutcomeKind.QUOTA), now)
    assert serve(pool, T0 + 900) == A
    pool.report(lease(pool.choose("codex", None, T0 + 901)), outcome(OutcomeKind.QUOTA), T0 + 901)
    assert pool.accounts(T0 + 901)[0].state_until == T0 + 901 + 300


def test_later_quota_429_never_shortens_a_cooldown() -> None:
    """A second quota 429 with an earlier time keeps the first, longer cooldown."""
    pool = make_pool("a")
    first = lease(pool.choose("codex", None, T0))
    second = lease(pool.choose("codex", None, T0))  # in flight at the same time
    pool.report(first, outcome(OutcomeKind.QUOTA, retry_at=T0 + 5000), T0)
    pool.report(second, outcome(OutcomeKind.QUOTA, retry_at=T0 + 1000), T0 + 1)
    assert pool.accounts(T0 + 1)[0].state_until == T0 + 5000


def test_throttled_is_a_short_backoff_that_does_not_bench() -> None:
    """A request-scoped 429/529: seconds of backoff, doubling to 30 s, windows untouched."""
    pool = make_pool("a", "b")
    pool.observe(A, reading(0.2, resets_at=T0 + 3600), T0)
    now = T0
    for expected in (2, 4, 8, 16, 30, 30):
        chosen = lease(pool.choose("codex", None, now, exclude=frozenset({B})))
        pool.report(
            chosen, outcome(OutcomeKind.THROTTLED, status=529, reason="overloaded_error"), now
        )
        view = next(v for v in pool.accounts(now) if v.name == A)
        assert view.state == "backoff"
        assert view.state_until == now + expected
        assert [w.used for w in view.windows] == [0.2]
        now += expected
    assert state_of(pool, A, now) == "ok"


def test_throttled_with_an_exhausted_flag_still_does_not_bench() -> None:
    """Even if a request-scoped 429 carries a reading, no quota cooldown starts from it."""
    pool = make_pool("a")
    chosen = lease(pool.choose("codex", None, T0))
    quota = QuotaReading(windows=(QuotaWindow("5h", 0.5, FIVE_H, T0 + 9000),), exhausted=True)
    pool.report(chosen, outcome(OutcomeKind.THROTTLED, status=429, quota=quota), T0)
    assert state_of(pool, A, T0 + 2) == "ok"


def test_auth_failure_backs_off_a_minute_without_relogin() -> None:
    """A 401 that survived the refresh: 60 s backoff and a penalty, never "needs re-login"."""
    pool = make_pool("a", "b")
    chosen = lease(pool.choose("codex", None, T0))
    pool.report(chosen, outcome(OutcomeKind.AUTH, status=401), T0)
    view = next(v for v in pool.accounts(T0) if v.name == A)
    assert (view.state, view.state_until) == ("backoff", T0 + 60)
    assert serve(pool, T0 + 30) == B
    # After the backoff the penalty still makes b the better choice for a while.
    assert state_of(pool, A, T0 + 60) == "ok"
    assert serve(pool, T0 + 61) == B


def test_permanent_refresh_failure_takes_the_account_out_until_cleared() -> None:
    """needs re-login: never chosen, named in status and in the exhaustion reasons."""
    pool = make_pool("a", "b")
    pool.set_needs_relogin(A, "refresh_token_reused")
    for step in range(5):
        assert serve(pool, T0 + step) == B
    view = next(v for v in pool.accounts(T0) if v.name == A)
    assert (view.state, view.state_reason) == (
        "needs_relogin",
        "needs re-login: refresh_token_reused",
    )
    pool.set_needs_relogin(B, "invalid_grant")
    result = exhausted(pool.choose("codex", None, T0 + 10))
    assert result.retry_at is None
    assert dict(result.reasons) == {
        A: "needs re-login: refresh_token_reused",
        B: "needs re-login: invalid_grant",
    }
    pool.clear_needs_relogin(A)
    assert serve(pool, T0 + 11) == A


def test_transient_error_is_a_small_penalty_and_short_backoff() -> None:
    """5xx / connect error: a 2 s backoff, then the penalty steers new work elsewhere."""
    pool = make_pool("a", "b")
    chosen = lease(pool.choose("codex", None, T0))
    pool.report(chosen, outcome(OutcomeKind.TRANSIENT, status=502), T0)
    assert state_of(pool, A, T0 + 1) == "backoff"
    assert state_of(pool, A, T0 + 2) == "ok"
    assert serve(pool, T0 + 3) == B
    assert serve(pool, T0 + 4) == B  # b is still ahead: a's penalty decays over minutes
    assert serve(pool, T0 + 4 + 3600) == A  # decayed away: least recently used again


def test_client_error_counts_nothing_against_the_account() -> None:
    """A 400 is the request's fault: no backoff, no penalty."""
    pool = make_pool("a", "b")
    chosen = lease(pool.choose("codex", None, T0))
    pool.report(chosen, outcome(OutcomeKind.CLIENT_ERROR, status=400), T0)
    assert state_of(pool, A, T0) == "ok"
    assert serve(pool, T0 + 1) == B  # least recently used, not a penalty
    assert serve(pool, T0 + 2) == A


def test_report_twice_or_after_removal_is_harmless() -> None:
    """A lease ends once: a second report, or one for a removed account, changes nothing."""
    pool = make_pool("a")
    chosen = lease(pool.choose("codex", None, T0))
    pool.report(chosen, outcome(OutcomeKind.OK), T0)
    pool.report(chosen, outcome(OutcomeKind.QUOTA, retry_at=T0 + 100), T0)
    assert state_of(pool, A, T0) == "ok"
    again = lease(pool.choose("codex", None, T0))
    pool.remove_account(A)
    pool.report(again, outcome(OutcomeKind.OK), T0)
    assert pool.accounts(T0) == []


def test_everything_busy_names_each_account_and_the_earliest_retry() -> None:
    """§3.4: Exhausted carries the earliest usable time and a reason for every account."""
    pool = make_pool("a", "b", "c", "d", "e")
    pool.set_account("codex/d", "codex", disabled=True)
    pool.set_needs_relogin("codex/e", "refresh_token_reused")
    pool.report(
        lease(pool.choose("codex", None, T0)),
        outcome(OutcomeKind.QUOTA, reason="usage_limit_reached", retry_at=T0 + 3000),
        T0,
    )
    pool.observe("codex/b", reading(0.985, resets_at=T0 + 2000), T0)
    pool.report(
        lease(pool.choose("codex", None, T0)), outcome(OutcomeKind.THROTTLED, status=429), T0
    )
    result = exhausted(pool.choose("codex", None, T0 + 1))
    assert result.retry_at == T0 + 2
    assert dict(result.reasons) == {
        A: f"cooling until {iso(T0 + 3000)} (usage_limit_reached)",
        B: f"98% of 5h window used (ceiling 98%), resets at {iso(T0 + 2000)}",
        "codex/c": f"backing off until {iso(T0 + 2)} (throttled: HTTP 429)",
        "codex/d": "disabled",
        "codex/e": "needs re-login: refresh_token_reused",
    }
    assert pool.next_change("codex", T0 + 1) == T0 + 2
    assert pool.next_change("codex", T0 + 2) == T0 + 2000


def test_excluded_accounts_are_skipped_and_named() -> None:
    """Accounts already tried for this request are not leased again for it."""
    pool = make_pool("a", "b")
    assert lease(pool.choose("codex", None, T0, exclude=frozenset({A}))).account == B
    result = exhausted(pool.choose("codex", None, T0, exclude=frozenset({A, B})))
    assert result.retry_at is None
    assert dict(result.reasons) == {
        A: "already tried for this request",
        B: "already tried for this request",
    }


def test_no_accounts_for_a_provider_is_exhausted() -> None:
    """A provider without accounts is exhausted with no retry time."""
    pool = make_pool("a")
    assert pool.choose("claude", None, T0) == exhausted(pool.choose("claude", None, T0))
    assert exhausted(pool.choose("claude", None, T0)).retry_at is None
