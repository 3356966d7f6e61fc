"""Model windows stop their model on an account, never the account (issue 11 item 5)."""

from __future__ import annotations

from tests.accounts.helpers import T0, WEEK, exhausted, lease, make_pool, outcome, state_of
from trio_pool.providers.base import REQUEST_MODEL, OutcomeKind, QuotaReading, QuotaWindow

A, B = "gemini/a", "gemini/b"
PRO, FLASH = "gemini-2.5-pro", "gemini-2.5-flash"


def buckets(pro: float, flash: float, resets_at: float) -> QuotaReading:
    return QuotaReading(
        (
            QuotaWindow(PRO, pro, None, resets_at, PRO),
            QuotaWindow(FLASH, flash, None, resets_at, FLASH),
        )
    )


def test_a_spent_model_window_stops_that_model_only() -> None:
    """Pro at zero with Flash at 90 % left: Flash still goes to the account, Pro does not,
    and the account itself shows as ok."""
    pool = make_pool("a", provider="gemini")
    pool.observe(A, buckets(1.0, 0.1, T0 + 3600), T0)
    assert state_of(pool, A, T0) == "ok"
    assert lease(pool.choose("gemini", None, T0, model=FLASH)).account == A
    refused = exhausted(pool.choose("gemini", None, T0, model=PRO))
    assert refused.retry_at == T0 + 3600
    assert "model window" in dict(refused.reasons)[A]
    assert lease(pool.choose("gemini", None, T0 + 3600, model=PRO)).account == A


def test_model_windows_steer_that_models_requests_to_the_account_with_room() -> None:
    """Scores count the request's model window: Pro goes where Pro has room."""
    pool = make_pool("a", "b", provider="gemini")
    pool.observe(A, buckets(0.9, 0.0, T0 + 3600), T0)
    pool.observe(B, buckets(0.1, 0.8, T0 + 3600), T0)
    assert lease(pool.choose("gemini", None, T0, model=PRO)).account == B
    assert lease(pool.choose("gemini", None, T0, model=FLASH)).account == A


def test_a_model_429_cools_the_model_not_the_account() -> None:
    """A QUOTA outcome scoped to the request's model benches that model until the reset."""
    pool = make_pool("a", provider="gemini")
    got = lease(pool.choose("gemini", None, T0, model=PRO))
    pool.report(
        got, outcome(OutcomeKind.QUOTA, status=429, retry_at=T0 + 900, scope=REQUEST_MODEL), T0
    )
    assert state_of(pool, A, T0 + 1) == "ok"
    assert lease(pool.choose("gemini", None, T0 + 1, model=FLASH)).account == A
    assert exhausted(pool.choose("gemini", None, T0 + 1, model=PRO)).retry_at == T0 + 900
    assert pool.next_change("gemini", T0 + 1, PRO) == T0 + 900
    lease(pool.choose("gemini", None, T0 + 900, model=PRO))


def test_account_wide_windows_still_gate_every_model() -> None:
    """Claude's 7d at its ceiling stops the account for every model; the Opus week only Opus."""
    pool = make_pool("a", provider="claude")
    name = "claude/a"
    opus = QuotaWindow("7d_opus", 1.0, WEEK, T0 + 7200, "opus")
    pool.observe(name, QuotaReading((QuotaWindow("7d", 0.5, WEEK, T0 + 9000), opus)), T0)
    assert lease(pool.choose("claude", None, T0, model="claude-sonnet-4-5")).account == name
    exhausted(pool.choose("claude", None, T0, model="claude-opus-4-1"))
    pool.observe(name, QuotaReading((QuotaWindow("7d", 1.0, WEEK, T0 + 9000),)), T0)
    exhausted(pool.choose("claude", None, T0, model="claude-sonnet-4-5"))
    assert state_of(pool, name, T0) == "cooling"


def test_the_pool_usage_served_to_codex_keeps_families_apart() -> None:
    """Aggregates carry each window's scope, so wham/usage can serve the main family only."""
    pool = make_pool("a")
    family = QuotaWindow("gpt-5.4-codex-sonic 5h", 1.0, 18000, T0 + 60, "gpt-5.4-codex-sonic")
    pool.observe("codex/a", QuotaReading((QuotaWindow("5h", 0.2, 18000, T0 + 60), family)), T0)
    usage = pool.pool_usage("codex", T0)
    assert {w.name: w.scope for w in usage.windows} == {
        "5h": None,
        "gpt-5.4-codex-sonic 5h": "gpt-5.4-codex-sonic",
    }
    assert usage.available


def test_a_codex_family_429_cools_its_model_until_the_spent_window_resets() -> None:
    """Of a family's two windows only the spent 5h one holds the model back: the weekly one
    with room left sets no later reset, and the account's own windows are untouched."""
    pool = make_pool("a")
    spark, name = "gpt-5.3-codex-spark", "GPT-5.3-Codex-Spark"
    reset_5h, reset_week = T0 + 3600, T0 + 5 * 86400
    family = QuotaReading(
        (
            QuotaWindow(f"{name} 5h", 1.0, 18000, reset_5h, name),
            QuotaWindow(f"{name} weekly", 0.3, WEEK, reset_week, name),
        )
    )
    pool.observe("codex/a", QuotaReading((QuotaWindow("5h", 0.2, 18000, T0 + 60),)), T0)
    got = lease(pool.choose("codex", None, T0, model=spark))
    refused = outcome(OutcomeKind.QUOTA, status=429, retry_at=reset_5h, quota=family, scope=name)
    pool.report(got, refused, T0)
    assert state_of(pool, "codex/a", T0 + 1) == "ok"
    assert exhausted(pool.choose("codex", None, T0 + 1, model=spark)).retry_at == reset_5h
    assert lease(pool.choose("codex", None, T0 + 1, model="gpt-5")).account == "codex/a"
    lease(pool.choose("codex", None, reset_5h, model=spark))
    (view,) = pool.accounts(T0 + 1)
    used = {w.name: w.used for w in view.windows}
    assert used == {"5h": 0.2, f"{name} 5h": 1.0, f"{name} weekly": 0.3}
