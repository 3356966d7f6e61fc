"""Eligibility and scoring: which account should serve the next request (design.md §3.1).

Pure functions of an AccountState and ``now``; the pool owns the state and the pins.
"""

from __future__ import annotations

import attrs

from trio_pool.accounts.model import (
    AccountAction,
    AccountState,
    AccountStateName,
    ObservedWindow,
    ceiling,
    iso,
)

# Each request already running on an account lowers its score a little, so a burst of new
# conversations spreads instead of landing on one account.
IN_FLIGHT_COST = 0.02
# The recent-error penalty halves every 5 minutes.
PENALTY_HALF_LIFE_S = 300.0
# The reset-soon boost ("use it or lose it"): quota left in a window that resets soon is
# lost if unused, so the score is multiplied by up to MAX_RESET_FACTOR as the reset nears
# (linearly in the fraction of the window already run). A steeper boost (1/remaining, up
# to 8x) used more of the expiring quota in the routing simulation but made scores swing
# so much that pinned conversations moved twice as often; see bench/routing_sim.py.
MAX_RESET_FACTOR = 2.0
# The switching margin of sticky = "auto", in score units (about headroom fractions) per unit
# of sticky_strength. Moving a conversation costs a full prompt-cache miss: the next turn
# re-reads the whole context at full price, often 100k+ tokens. So at strength 1 a soft pin
# stays while its account has SAFE_HEADROOM left, and then moves only when another account
# is better by 25 points. New conversations always go to the best account, so a busy
# account does not keep taking follow-ups while another sits idle (CPA #5800): its pins
# end with their conversations (pin_idle_ttl_s). Strength 0 moves to any strictly better
# account; overflow-tier pins return to a better tier as soon as one is free.
SWITCH_MARGIN = 0.25
SAFE_HEADROOM = 0.1
# fast_mode = "auto" asks for priority processing only while the account is healthy.
FAST_MAX_USED = 0.5
FAST_MAX_PENALTY = 0.05
EPSILON = 1e-9


@attrs.frozen
class Availability:
    """Whether an account can take a request now, and if not why and until when."""

    state: AccountStateName
    reason: str = ""
    until: float | None = None  # when it becomes usable; None = unknown or never

    @property
    def usable(self) -> bool:
        return self.state == "ok"


# The answer for almost every account on almost every request: one frozen instance.
AVAILABLE = Availability("ok")


def action_text(action: AccountAction) -> str:
    """The reason shown for a needs-action account: the message, and the link to open."""
    text = f"action needed ({action.kind}): {action.message}"
    return f"{text} (open {action.link})" if action.link else text


def current_penalty(account: AccountState, now: float) -> float:
    if account.penalty <= 0:
        return 0.0
    elapsed = max(now - account.penalty_at, 0.0)
    return float(account.penalty * 0.5 ** (elapsed / PENALTY_HALF_LIFE_S))


def applicable(account: AccountState, model: str | None) -> list[ObservedWindow]:
    """The windows that limit a request for ``model``: the account-wide ones, and the model
    windows that match it (none when the model is unknown)."""
    return [w for w in account.windows.values() if w.limits(model)]


def blocking_windows(
    account: AccountState, now: float, model: str | None = None
) -> list[ObservedWindow]:
    return [w for w in applicable(account, model) if w.over_ceiling(now)]


def usable(account: AccountState, now: float, model: str | None = None) -> bool:
    """``assess(account, now, model).usable``, without composing reasons: routing asks it of
    every account on every request, and almost every answer is yes."""
    if account.disabled or account.needs_relogin is not None or account.action is not None:
        return False
    if account.cooldown_until is not None and account.cooldown_until > now:
        return False
    if account.backoff_until is not None and account.backoff_until > now:
        return False
    for observed in account.windows.values():
        if observed.over_ceiling(now) and observed.limits(model):
            return False
    return True


def assess(account: AccountState, now: float, model: str | None = None) -> Availability:
    """The account's state now, for a request for ``model`` (None: the account as a whole,
    as status shows it: a spent model window leaves it "ok" for the other models).
    Several blocks may hold at once: `until` is the latest."""
    if usable(account, now, model):
        return AVAILABLE
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
    for observed in blocking_windows(account, now, model):
        state = "cooling"
        window = observed.window
        ends.append(observed.deadline)
        what = f"{window.name} window" if window.scope is None else f"{window.name} model window"
        text = (
            f"{round(observed.used_at(now) * 100)}% of {what} used "
            f"(ceiling {round(ceiling(window) * 100)}%)"
        )
        if window.resets_at is not None:
            text += f", resets at {iso(window.resets_at)}"
        reasons.append(text)
    if account.backoff_until is not None and account.backoff_until > now:
        if state == "ok":
            state = "backoff"
        ends.append(account.backoff_until)
        reasons.append(f"backing off until {iso(account.backoff_until)} ({account.backoff_reason})")
    return Availability(state, "; ".join(reasons), max(ends))


def survey(
    account: AccountState, now: float, model: str | None = None
) -> tuple[ObservedWindow | None, bool]:
    """One pass over the windows limiting ``model``: the binding one (the most used now;
    ties: the one resetting last, which binds longest), and whether any has started."""
    binding: ObservedWindow | None = None
    binding_used = binding_deadline = 0.0
    started = False
    for observed in account.windows.values():
        if not observed.limits(model):
            continue
        used = observed.used_at(now)
        if binding is None or (used, observed.deadline) > (binding_used, binding_deadline):
            binding, binding_used, binding_deadline = observed, used, observed.deadline
        started = started or observed.started(now)
    return binding, started


def binding_window(
    account: AccountState, now: float, model: str | None = None
) -> ObservedWindow | None:
    """The most used window limiting ``model`` now (ties: the one resetting last, which
    binds longest)."""
    return survey(account, now, model)[0]


def binding_used(account: AccountState, now: float, model: str | None = None) -> float:
    binding = binding_window(account, now, model)
    return 0.0 if binding is None else binding.used_at(now)


def reset_factor(observed: ObservedWindow | None, now: float) -> float:
    """1 for a window that just started, rising as 1/remaining towards MAX_RESET_FACTOR."""
    if observed is None or observed.window.resets_at is None:
        return 1.0
    length = observed.length
    if length is None:
        return 1.0
    remaining = min(max((observed.window.resets_at - now) / length, 0.0), 1.0)
    return 1.0 + (MAX_RESET_FACTOR - 1.0) * (1.0 - remaining)


def score(account: AccountState, now: float, model: str | None = None) -> float:
    """Higher is better. Unknown windows score as full headroom."""
    return score_with(account, binding_window(account, now, model), now)


def score_with(account: AccountState, binding: ObservedWindow | None, now: float) -> float:
    """``score`` when the binding window is already known."""
    headroom = 1.0 - (0.0 if binding is None else binding.used_at(now))
    return (
        headroom * reset_factor(binding, now)
        - IN_FLIGHT_COST * account.in_flight
        - current_penalty(account, now)
    )


def is_dormant(account: AccountState, now: float, model: str | None = None) -> bool:
    """No window seen started: no reading, or 0 % used with no reset time (or reset passed)."""
    return not survey(account, now, model)[1]


def sort_key(
    account: AccountState, now: float, *, dormant_touch: bool, model: str | None = None
) -> tuple[object, ...]:
    """Sort ascending; the first is the best choice within the eligible candidates.

    Tiers first (lower priority numbers win outright), then an untouched dormant account,
    then score, then least recently used (never used first), then name for determinism.
    """
    binding, started = survey(account, now, model)
    touch = dormant_touch and not account.touched and not started
    last = -1.0 if account.last_used is None else account.last_used
    # Scores within a tenth of a percent of headroom are a tie, so float noise and faded
    # penalties do not defeat the least-recently-used spreading.
    points = -round(score_with(account, binding, now), 3)
    return (account.priority, not touch, points, last, account.name)


def clearly_better(
    pinned: AccountState,
    other: AccountState,
    now: float,
    *,
    strength: float,
    model: str | None = None,
) -> bool:
    """Whether sticky = "auto" should move a soft pin from `pinned` to `other`."""
    if other.priority < pinned.priority:
        return True  # overflow tiers are for overflow: come back once a better tier is free
    if other.priority > pinned.priority:
        return False
    # A pinned account with ample room left is not worth a cache miss, whatever the others
    # score: SAFE_HEADROOM (10 %, scaled down as sticky_strength grows) of its binding window left,
    # and no recent errors. Reset boosts make scores swing with time; without this rule the
    # routing simulation moved conversations whenever another account's window reset.
    if strength > 0 and (
        1.0 - binding_used(pinned, now, model) >= SAFE_HEADROOM / strength
        and current_penalty(pinned, now) < FAST_MAX_PENALTY
    ):
        return False
    # Otherwise the margin is relative once scores exceed 1: a pin moves for a clearly
    # better account, not for a boost that grew a little.
    pinned_score = score(pinned, now, model)
    margin = SWITCH_MARGIN * strength * max(1.0, pinned_score)
    return score(other, now, model) - pinned_score > margin + EPSILON


def wants_fast(account: AccountState, now: float, model: str | None = None) -> bool:
    """fast_mode = "auto": priority tier only while the account has plenty left and no errors."""
    return (
        binding_used(account, now, model) < FAST_MAX_USED
        and current_penalty(account, now) < FAST_MAX_PENALTY
    )
