"""Conversation pins: they stick, move only when forced or clearly worse, and expire."""

from __future__ import annotations

from tests.accounts.helpers import T0, key, lease, make_pool, outcome, reading, serve
from trio_pool.providers.base import OutcomeKind

A, B, C = "codex/a", "codex/b", "codex/c"


def test_a_conversation_stays_on_its_account() -> None:
    """Follow-ups of one conversation keep their account although others are less used."""
    pool = make_pool("a", "b", "c")
    k = key("conv-1")
    first = lease(pool.choose("codex", k, T0))
    assert not first.pinned
    pool.report(first, outcome(OutcomeKind.OK), T0)
    for step in range(1, 10):
        follow = lease(pool.choose("codex", k, T0 + step))
        assert (follow.account, follow.pinned) == (first.account, True)
        pool.report(follow, outcome(OutcomeKind.OK), T0 + step)
        serve(pool, T0 + step)  # unrelated traffic rotates over the others meanwhile
    assert pool.pinned_account("codex", "conv-1", T0 + 10) == first.account


def test_pin_moves_when_its_account_cools_down_and_then_stays_moved() -> None:
    """A cooling pinned account re-pins the conversation; it does not bounce back later."""
    pool = make_pool("a", "b")
    k = key("conv")
    assert serve(pool, T0, k) == A
    pool.report(
        lease(pool.choose("codex", None, T0 + 1, exclude=frozenset({B}))),
        outcome(OutcomeKind.QUOTA, retry_at=T0 + 100),
        T0 + 1,
    )
    moved = lease(pool.choose("codex", k, T0 + 2))
    assert (moved.account, moved.pinned) == (B, False)
    pool.report(moved, outcome(OutcomeKind.OK), T0 + 2)
    assert serve(pool, T0 + 200, k) == B


def test_pin_moves_when_its_account_is_excluded_for_this_request() -> None:
    """A retry of a request that failed on the pinned account goes elsewhere and re-pins."""
    pool = make_pool("a", "b")
    k = key("conv")
    assert serve(pool, T0, k) == A
    assert serve(pool, T0 + 1, k, exclude=frozenset({A})) == B
    assert pool.pinned_account("codex", "conv", T0 + 1) == B


def test_auto_moves_only_when_clearly_worse() -> None:
    """sticky=auto: a pin with room left stays, even at 52 % against 12 % used (a cache miss
    costs more); once nearly out of room (95 % against 12 %) it moves. New conversations go
    to the emptier account all along, so the imbalance does not last (CPA #5800)."""
    pool = make_pool("a", "b")
    k = key("conv")
    assert serve(pool, T0, k) == A
    pool.observe(A, reading(0.52), T0 + 1)
    pool.observe(B, reading(0.12), T0 + 1)
    assert serve(pool, T0 + 2, k) == A
    assert serve(pool, T0 + 2, key("new")) == B
    pool.observe(A, reading(0.95), T0 + 3)
    assert serve(pool, T0 + 4, k) == B


def test_sticky_strength_scales_the_margin() -> None:
    """Strength 0 follows any better account; strength 3 holds even a 60-point gap."""
    free = make_pool("a", "b", sticky_strength=0.0)
    firm = make_pool("a", "b", sticky_strength=3.0)
    for pool in (free, firm):
        assert serve(pool, T0, key("conv")) == A
        pool.observe(A, reading(0.65), T0 + 1)
        pool.observe(B, reading(0.05), T0 + 1)
    assert serve(firm, T0 + 2, key("conv")) == A
    free.observe(A, reading(0.11), T0 + 1)
    free.observe(B, reading(0.10), T0 + 1)
    assert serve(free, T0 + 2, key("conv")) == B


def test_sticky_always_stays_while_eligible() -> None:
    """sticky=always ignores scores: only an unusable account makes the conversation move."""
    pool = make_pool("a", "b", sticky="always")
    k = key("conv")
    assert serve(pool, T0, k) == A
    pool.observe(A, reading(0.97), T0 + 1)
    assert serve(pool, T0 + 2, k) == A
    pool.observe(A, reading(0.98), T0 + 3)
    assert serve(pool, T0 + 4, k) == B


def test_sticky_off_ignores_and_records_no_pins() -> None:
    """sticky=off: soft keys rotate like unkeyed requests and leave no pin behind."""
    pool = make_pool("a", "b", sticky="off")
    k = key("conv")
    assert [serve(pool, T0 + i, k) for i in range(4)] == [A, B, A, B]
    assert pool.pinned_account("codex", "conv", T0 + 5) is None
    assert all(v.pinned_conversations == 0 for v in pool.accounts(T0 + 5))


def test_hard_keys_stay_whatever_the_scores_and_sticky_mode() -> None:
    """Turn-state / WebSocket keys stick even when clearly worse, and even with sticky=off."""
    for mode in ("auto", "off"):
        pool = make_pool("a", "b", sticky=mode)
        hard = key("turn-state", hard=True)
        assert serve(pool, T0, hard) == A
        pool.observe(A, reading(0.90), T0 + 1)
        pool.observe(B, reading(0.0), T0 + 1)
        chosen = lease(pool.choose("codex", hard, T0 + 2))
        assert (chosen.account, chosen.pinned) == (A, True)
        pool.report(chosen, outcome(OutcomeKind.OK), T0 + 2)
        pool.observe(A, reading(0.99), T0 + 3)
        assert serve(pool, T0 + 4, hard) == B


def test_pins_expire_after_the_idle_ttl() -> None:
    """A pin unused for pin_idle_ttl_s is forgotten; each use restarts the clock."""
    pool = make_pool("a", "b", pin_idle_ttl_s=600.0)
    k = key("conv")
    assert serve(pool, T0, k) == A
    assert serve(pool, T0 + 500, k) == A  # within the TTL: kept and refreshed
    assert serve(pool, T0 + 1000, k) == A  # 500 s after the last use
    assert pool.pinned_account("codex", "conv", T0 + 1601) is None
    assert pool.accounts(T0 + 1601)[0].pinned_conversations == 0
    chosen = lease(pool.choose("codex", k, T0 + 1601))
    assert (chosen.account, chosen.pinned) == (B, False)  # b is least recently used


def test_overflow_pin_returns_to_the_primary_tier_in_auto_mode() -> None:
    """A conversation pushed to an overflow account comes back when the primary is free."""
    pool = make_pool("a", "b")
    pool.set_account(B, "codex", priority=1)
    k = key("conv")
    pool.report(
        lease(pool.choose("codex", None, T0)), outcome(OutcomeKind.QUOTA, retry_at=T0 + 60), T0
    )
    assert serve(pool, T0 + 1, k) == B
    assert serve(pool, T0 + 61, k) == A


def test_removing_an_account_drops_its_pins() -> None:
    """remove_account forgets the conversations pinned to it."""
    pool = make_pool("a", "b")
    assert serve(pool, T0, key("conv")) == A
    pool.remove_account(A)
    assert pool.pinned_account("codex", "conv", T0) is None
    assert serve(pool, T0 + 1, key("conv")) == B


def test_pins_are_per_provider() -> None:
    """The same key value under two providers pins two different accounts."""
    pool = make_pool("a")
    pool.set_account("claude/x", "claude")
    assert serve(pool, T0, key("same")) == A
    claude = lease(pool.choose("claude", key("same"), T0))
    assert (claude.account, claude.pinned) == ("claude/x", False)
