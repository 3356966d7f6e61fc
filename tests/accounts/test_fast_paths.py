"""Hypothesis: the routing's fast paths decide exactly as the straightforward rules do.

The reference below is the routing as it read before the speed work (issue 12): every
window's deadline, ceiling and used fraction recomputed from its QuotaWindow on each
question, every account assessed in full, every pin scanned on every choice. The pool must
agree with it on random pools, to the last reason string.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.accounts.helpers import T0
from trio_pool.accounts.model import (
    UNKNOWN_WINDOW_TTL_S,
    AccountAction,
    AccountState,
    AccountStateName,
    ObservedWindow,
    PinRecord,
    ceiling,
    iso,
    window_length,
)
from trio_pool.accounts.pool import Exhausted, Lease, Pool
from trio_pool.accounts.routing import (
    IN_FLIGHT_COST,
    MAX_RESET_FACTOR,
    Availability,
    action_text,
    assess,
    current_penalty,
    score,
    sort_key,
    usable,
)
from trio_pool.config import RoutingConfig
from trio_pool.providers.base import QuotaWindow, scope_matches

MODELS = (None, "claude-opus-4-1", "claude-sonnet-4-5", "gemini-2.5-pro")

# -- the reference: the rules without any precomputation --------------------------------------


def ref_deadline(w: ObservedWindow) -> float:
    if w.window.resets_at is not None:
        return w.window.resets_at
    length = window_length(w.window)
    return w.seen_at + (length if length is not None else UNKNOWN_WINDOW_TTL_S)


def ref_used(w: ObservedWindow, now: float) -> float:
    return 0.0 if now >= ref_deadline(w) else min(max(w.window.used, 0.0), 1.0)


def ref_applicable(account: AccountState, model: str | None) -> list[ObservedWindow]:
    return [
        w
        for w in account.windows.values()
        if w.window.scope is None or scope_matches(w.window.scope, model)
    ]


def ref_assess(account: AccountState, now: float, model: str | None) -> Availability:
    if account.disabled:
        return Availability("disabled", "disabled")
    if account.needs_relogin is not None:
        return Availability("needs_relogin", f"needs re-login: {account.needs_relogin}")
    if account.action is not None:
        return Availability("needs_action", action_text(account.action))
    ends: list[float] = []
    reasons: list[str] = []
    state: AccountStateName = "ok"
    if account.cooldown_until is not None and account.cooldown_until > now:
        state = "cooling"
        ends.append(account.cooldown_until)
        reasons.append(f"cooling until {iso(account.cooldown_until)} ({account.cooldown_reason})")
    for w in ref_applicable(account, model):
        if ref_used(w, now) < ceiling(w.window):
            continue
        state = "cooling"
        ends.append(ref_deadline(w))
        what = f"{w.name} window" if w.window.scope is None else f"{w.name} model window"
        text = (
            f"{round(ref_used(w, now) * 100)}% of {what} used "
            f"(ceiling {round(ceiling(w.window) * 100)}%)"
        )
        if w.window.resets_at is not None:
            text += f", resets at {iso(w.window.resets_at)}"
        reasons.append(text)
    if account.backoff_until is not None and account.backoff_until > now:
        if state == "ok":
            state = "backoff"
        ends.append(account.backoff_until)
        reasons.append(f"backing off until {iso(account.backoff_until)} ({account.backoff_reason})")
    if state == "ok":
        return Availability("ok")
    return Availability(state, "; ".join(reasons), max(ends))


def ref_score(account: AccountState, now: float, model: str | None) -> float:
    best: ObservedWindow | None = None
    for w in ref_applicable(account, model):
        if best is None or (ref_used(w, now), ref_deadline(w)) > (
            ref_used(best, now),
            ref_deadline(best),
        ):
            best = w
    factor = 1.0
    if best is not None and best.window.resets_at is not None:
        length = window_length(best.window)
        if length is not None:
            remaining = min(max((best.window.resets_at - now) / length, 0.0), 1.0)
            factor = 1.0 + (MAX_RESET_FACTOR - 1.0) * (1.0 - remaining)
    headroom = 1.0 - (0.0 if best is None else ref_used(best, now))
    return headroom * factor - IN_FLIGHT_COST * account.in_flight - current_penalty(account, now)


def ref_sort_key(account: AccountState, now: float, model: str | None) -> tuple[object, ...]:
    dormant = not any(
        now < ref_deadline(w) and (w.window.used > 0 or w.window.resets_at is not None)
        for w in ref_applicable(account, model)
    )
    touch = not account.touched and dormant
    last = -1.0 if account.last_used is None else account.last_used
    points = -round(ref_score(account, now, model), 3)
    return (account.priority, not touch, points, last, account.name)


# -- random pools -----------------------------------------------------------------------------

times = st.sampled_from([-7200.0, -10.0, 0.0, 1.0, 600.0, 3 * 3600.0, 6 * 86400.0]).map(
    lambda off: T0 + off
)
quota_windows = st.builds(
    QuotaWindow,
    name=st.sampled_from(["5h", "7d", "weekly", "tokens", "gemini-2.5-pro"]),
    used=st.sampled_from([-0.5, 0.0, 0.2, 0.5, 0.97, 0.98, 0.985, 0.99, 1.0, 1.7]),
    window_s=st.none() | st.sampled_from([0.0, 3600.0, 5 * 3600.0, 7 * 86400.0]),
    resets_at=st.none() | times,
    scope=st.none() | st.sampled_from(["opus", "sonnet", "gemini-2.5-pro"]),
)


@st.composite
def accounts(draw: st.DrawFn, name: str) -> AccountState:
    account = AccountState(name, "claude")
    account.priority = draw(st.sampled_from([0, 0, 0, 1]))
    account.disabled = draw(st.sampled_from([False, False, False, True]))
    account.needs_relogin = draw(st.none() | st.just("refresh failed"))
    account.action = draw(st.none() | st.just(AccountAction("org_disabled", "off")))
    for window in draw(st.lists(quota_windows, max_size=3)):
        account.windows[window.name] = ObservedWindow(window, draw(times))
    account.cooldown_until = draw(st.none() | times)
    account.backoff_until = draw(st.none() | times)
    account.penalty = draw(st.sampled_from([0.0, 0.3, 1.0]))
    account.penalty_at = draw(times)
    account.in_flight = draw(st.integers(0, 3))
    account.last_used = draw(st.none() | times)
    account.touched = draw(st.booleans())
    return account


pools = st.lists(st.sampled_from("abcd"), min_size=1, max_size=4, unique=True).flatmap(
    lambda names: st.tuples(*(accounts(f"claude/{n}") for n in names))
)


def pool_of(members: tuple[AccountState, ...]) -> Pool:
    pool = Pool(RoutingConfig())
    for member in members:
        pool.set_account(member.name, "claude")
        pool._accounts[member.name] = member  # the drawn state as it stands
    return pool


@settings(max_examples=300, deadline=None)
@given(pools, times, st.sampled_from(MODELS), st.frozensets(st.sampled_from("abcd")))
def test_choose_and_assess_match_the_straightforward_rules(
    members: tuple[AccountState, ...], now: float, model: str | None, tried: frozenset[str]
) -> None:
    """Every account's state, reasons, score and sort key, and the account chosen (or the
    exhausted answer), are what the rules computed from scratch give."""
    for member in members:
        expected = ref_assess(member, now, model)
        assert assess(member, now, model) == expected
        assert usable(member, now, model) == (expected.state == "ok")
        assert score(member, now, model) == ref_score(member, now, model)
        assert sort_key(member, now, dormant_touch=True, model=model) == ref_sort_key(
            member, now, model
        )
    exclude = frozenset(f"claude/{n}" for n in tried)
    eligible = [
        m for m in members if m.name not in exclude and ref_assess(m, now, model).state == "ok"
    ]
    statuses = {m.name: ref_assess(m, now, model) for m in members}
    best = min(eligible, key=lambda m: ref_sort_key(m, now, model)) if eligible else None
    decision = pool_of(members).choose("claude", None, now, exclude=exclude, model=model)
    if best is not None:
        assert isinstance(decision, Lease)
        assert decision.account == best.name
        return
    assert isinstance(decision, Exhausted)
    ends = [s.until for s in statuses.values() if s.state != "ok" and s.until is not None]
    assert decision.retry_at == min(ends, default=None)
    assert decision.reasons == tuple(
        (m.name, "already tried for this request" if s.state == "ok" else s.reason)
        for m in members
        for s in [statuses[m.name]]
    )


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["pin", "merge", "export"]),
            st.sampled_from("xyz"),
            st.integers(0, 400).map(lambda off: T0 + off),
        ),
        max_size=16,
    ),
    st.sampled_from([60.0, 100.0]),
)
def test_idle_pins_expire_exactly_as_a_full_scan_finds_them(
    steps: list[tuple[str, str, float]], ttl: float
) -> None:
    """Skipping the pin scan while no pin can have expired loses no expiry: after any mix of
    pins, merged pins and exports at any times, the live pins are those used within the TTL."""
    pool = Pool(RoutingConfig(pin_idle_ttl_s=ttl))
    pool.set_account("claude/a", "claude")
    pins: dict[str, float] = {}  # the reference: key -> last use
    for op, key, at in steps:
        if op == "pin":
            pool.pin("claude", key, "claude/a", at)
            pins[key] = at
        elif op == "merge":
            # Merged a second after its use (alive): the newer use of a key wins.
            pool.merge_pins([PinRecord("claude", key, "claude/a", at)], at + 1.0)
            if key not in pins or pins[key] < at:
                pins[key] = at
        else:
            exported = {p.key: p.last_used for p in pool.export_pins(at)}
            pins = {k: used for k, used in pins.items() if at - used <= ttl}
            assert exported == pins


@given(quota_windows, times, times)
def test_a_window_observed_once_answers_as_recomputed(
    window: QuotaWindow, seen_at: float, now: float
) -> None:
    """The fields an ObservedWindow derives when made equal the answers computed afresh."""
    observed = ObservedWindow(window, seen_at)
    assert observed.deadline == ref_deadline(observed)
    assert observed.used_at(now) == ref_used(observed, now)
    assert observed.over_ceiling(now) == (ref_used(observed, now) >= ceiling(window))
    assert observed.length == window_length(window)
