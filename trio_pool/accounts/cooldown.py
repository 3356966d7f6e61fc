"""What an upstream outcome or a quota reading does to an account (design.md §3.2, §3.5).

Pure: these functions mutate one AccountState given ``now``; they never read a clock.
"""

from __future__ import annotations

import attrs

from trio_pool.accounts.model import AccountState, ObservedWindow
from trio_pool.accounts.routing import current_penalty
from trio_pool.providers.base import Outcome, OutcomeKind, QuotaReading, QuotaWindow

# A quota 429 that names no reset time at all: bench for 5 minutes, doubling on each further
# such 429 up to an hour. Short enough that a wrong guess costs little, long enough not to
# hammer an exhausted account (peers probed cooled accounts every minute for days, bccf #199).
QUOTA_FALLBACK_S = 300.0
QUOTA_FALLBACK_MAX_S = 3600.0
# When the upstream's reset time is already past (clock skew), still pause a few seconds.
QUOTA_MIN_S = 5.0
# Request-scoped throttling (429 without a quota signal, 529, overloaded): seconds, doubling.
THROTTLE_BASE_S = 2.0
THROTTLE_MAX_S = 30.0
# An auth failure that survived the shell's refresh-and-retry: a minute off, and a penalty.
AUTH_BACKOFF_S = 60.0
AUTH_PENALTY = 1.0
# 5xx, connect errors, timeouts before the response started.
TRANSIENT_BACKOFF_S = 2.0
TRANSIENT_PENALTY = 0.3


def add_penalty(account: AccountState, amount: float, now: float) -> None:
    account.penalty = current_penalty(account, now) + amount
    account.penalty_at = now


def merge_windows(account: AccountState, reading: QuotaReading, now: float) -> list[ObservedWindow]:
    """Newer replaces older for the same window name; windows the reading omits are kept.
    Returns the reading's windows as observed now."""
    fresh = []
    started = False
    for window in reading.windows:
        observed = ObservedWindow(window, now)
        account.windows[window.name] = observed
        fresh.append(observed)
        started = started or observed.started(now)
    if reading.plan:
        account.plan = reading.plan
    if started:
        account.touched = False  # its clock runs: a later dormant spell may be touched again
    return fresh


def shows_room(fresh: list[ObservedWindow], now: float) -> bool:
    """Whether a reading's windows, as ``merge_windows`` observed them, say the account can
    serve again: windows given, and every account-wide one below its ceiling (a spent
    model window stops only its model). The reading must not say "exhausted"."""
    return bool(fresh) and not any(
        observed.over_ceiling(now) for observed in fresh if observed.window.scope is None
    )


def clear_cooldown(account: AccountState) -> None:
    account.cooldown_until = None
    account.cooldown_reason = ""
    account.quota_fallback_level = 0


def start_quota_cooldown(
    account: AccountState, given: list[float | None], reason: str, now: float
) -> None:
    """Bench the account until the latest time the upstream gave, or a fallback if none.

    A cooldown is never shortened here: a later 429 only extends it.
    """
    times = [t for t in given if t is not None]
    # Account-wide windows already known to be at their ceiling also name when the quota
    # comes back.
    times += [
        w.window.resets_at
        for w in account.windows.values()
        if w.account_wide and w.window.resets_at is not None and w.over_ceiling(now)
    ]
    label = reason or "quota exhausted"
    if times:
        until = max(max(times), now + QUOTA_MIN_S)
        account.quota_fallback_level = 0
    else:
        wait = min(QUOTA_FALLBACK_S * 2**account.quota_fallback_level, QUOTA_FALLBACK_MAX_S)
        account.quota_fallback_level += 1
        until = now + wait
        label += f"; no reset time given, fallback {round(wait / 60)} min"
    if account.cooldown_until is not None and account.cooldown_until > until:
        return  # an existing, longer cooldown stands (and keeps its reason)
    account.cooldown_until = until
    account.cooldown_reason = label


def cool_model(account: AccountState, outcome: Outcome, scope: str, now: float) -> None:
    """A model's own quota ran out: that model's window on this account reads full until
    the reset the upstream gave (else QUOTA_FALLBACK_S); the account serves other models.

    The window keeps the name of the reading's window of that scope (Gemini's bucket,
    Claude's "7d_opus"; of a Codex family's two windows, the one at its ceiling), so a later
    poll with room replaces it: fresh evidence wins."""
    scoped = [w for w in account.windows.values() if w.window.scope == scope]
    known = next((w for w in scoped if w.over_ceiling(now)), scoped[0] if scoped else None)
    given = [t for t in (outcome.retry_at,) if t is not None]
    if outcome.quota is not None:
        # Only the resets of the scope's spent windows: a Codex family's weekly window with
        # room left must not hold the model back once its 5-hour window resets.
        given += [
            w.resets_at
            for w in outcome.quota.windows
            if w.scope == scope and w.resets_at and ObservedWindow(w, now).over_ceiling(now)
        ]
    until = max(max(given, default=now + QUOTA_FALLBACK_S), now + QUOTA_MIN_S)
    name = known.name if known is not None else scope
    length = None if known is None else known.window.window_s
    account.windows[name] = ObservedWindow(QuotaWindow(name, 1.0, length, until, scope), now)


def start_backoff(account: AccountState, seconds: float, reason: str, now: float) -> None:
    until = now + seconds
    if account.backoff_until is None or account.backoff_until < until:
        account.backoff_until = until
        account.backoff_reason = reason


def apply_reading(
    account: AccountState, reading: QuotaReading, now: float, *, reason: str = ""
) -> None:
    """A quota reading from anywhere: merge it, clear a stale cooldown, or start one."""
    fresh = merge_windows(account, reading, now)
    if reading.exhausted:
        start_quota_cooldown(account, [reading.resets_at], reason or "quota exhausted", now)
    elif account.cooldown_until is not None and shows_room(fresh, now):
        # Fresh evidence beats a remembered reset time (peers kept stale cooldowns for days:
        # CPA #2107, #4724).
        clear_cooldown(account)


def label_of(outcome: Outcome) -> str:
    """How a backoff's reason names the outcome (built only for outcomes that back off)."""
    return outcome.reason or ("no response" if outcome.status is None else f"HTTP {outcome.status}")


def apply_outcome(account: AccountState, outcome: Outcome, now: float) -> None:
    """The effect of one finished upstream attempt on its account (design.md §3.2)."""
    kind = outcome.kind
    if kind is OutcomeKind.QUOTA:
        if outcome.quota is not None:
            merge_windows(account, outcome.quota, now)
        if outcome.scope is not None:
            cool_model(account, outcome, outcome.scope, now)
            return
        quota_reset = None if outcome.quota is None else outcome.quota.resets_at
        start_quota_cooldown(account, [outcome.retry_at, quota_reset], outcome.reason, now)
        return
    if outcome.quota is not None:
        if kind is OutcomeKind.THROTTLED:
            # Request-scoped: learn the windows, but never bench the account for it.
            merge_windows(account, outcome.quota, now)
        else:
            apply_reading(account, outcome.quota, now, reason=outcome.reason)
    if kind is OutcomeKind.OK:
        account.backoff_until = None
        account.backoff_reason = ""
        account.throttle_level = 0
        if account.cooldown_until is None or account.cooldown_until <= now:
            account.quota_fallback_level = 0
        account.penalty = current_penalty(account, now) / 2
        account.penalty_at = now
    elif kind is OutcomeKind.THROTTLED:
        wait = min(THROTTLE_BASE_S * 2**account.throttle_level, THROTTLE_MAX_S)
        account.throttle_level += 1
        start_backoff(account, wait, f"throttled: {label_of(outcome)}", now)
    elif kind is OutcomeKind.AUTH:
        add_penalty(account, AUTH_PENALTY, now)
        start_backoff(account, AUTH_BACKOFF_S, f"auth failed: {label_of(outcome)}", now)
    elif kind is OutcomeKind.FORBIDDEN:
        add_penalty(account, AUTH_PENALTY, now)
        start_backoff(account, AUTH_BACKOFF_S, f"refused: {label_of(outcome)}", now)
    elif kind is OutcomeKind.TRANSIENT:
        add_penalty(account, TRANSIENT_PENALTY, now)
        start_backoff(account, TRANSIENT_BACKOFF_S, f"upstream error: {label_of(outcome)}", now)
    elif kind is OutcomeKind.ACCOUNT_ACTION and outcome.action is not None:
        account.action = attrs.evolve(outcome.action, since_at=now)
    # CLIENT_ERROR: the request's fault, nothing against the account.
