"""What the pool knows about one account, and the frozen views it hands out.

Pure: no trio, no I/O, no clock. Every time is unix seconds passed in as ``now``.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from typing import Literal

import attrs

# AccountAction lives beside Outcome (providers' classifiers return it); re-exported here.
from trio_pool.providers.base import AccountAction as AccountAction
from trio_pool.providers.base import ProviderName, QuotaWindow, TokenUsage, scope_matches

AccountStateName = Literal["ok", "cooling", "backoff", "needs_relogin", "needs_action", "disabled"]

DAY_S = 86400.0
# Windows at least this long are "weekly-or-longer" and get the higher ceiling.
LONG_WINDOW_S = 2 * DAY_S
SHORT_CEILING = 0.98
LONG_CEILING = 0.99
# A reading that names neither its reset time nor its window length cannot be aged by the
# window; after this long it is treated as stale (counts as 0 used) so it never benches an
# account for good. The next response brings a fresh reading anyway.
UNKNOWN_WINDOW_TTL_S = 3600.0

_NAMED_LENGTHS = {"daily": DAY_S, "day": DAY_S, "weekly": 7 * DAY_S, "week": 7 * DAY_S}
_LENGTH_RE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNIT_S = {"m": 60.0, "h": 3600.0, "d": DAY_S, "w": 7 * DAY_S}


def iso(unix_s: float) -> str:
    """A unix time as a UTC ISO-8601 string for messages and status."""
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def window_length(window: QuotaWindow) -> float | None:
    """The window's length: as reported, else guessed from names like "5h", "7d", "weekly"."""
    if window.window_s is not None and window.window_s > 0:
        return window.window_s
    name = window.name.strip().lower()
    if name in _NAMED_LENGTHS:
        return _NAMED_LENGTHS[name]
    match = _LENGTH_RE.match(name)
    if match:
        # "0h" names no length: None, never a 0 that a score would divide by.
        return int(match.group(1)) * _UNIT_S[match.group(2)] or None
    return None


def ceiling(window: QuotaWindow) -> float:
    """The hard ceiling of a window: 98 % for short windows, 99 % for weekly-or-longer ones."""
    return ceiling_for(window_length(window))


def ceiling_for(length: float | None) -> float:
    """The ceiling of a window of ``length`` seconds (None: unknown, a short window's)."""
    return LONG_CEILING if length is not None and length >= LONG_WINDOW_S else SHORT_CEILING


@attrs.frozen
class ObservedWindow:
    """A quota window as last reported, with when we heard it."""

    window: QuotaWindow
    seen_at: float
    # Derived once from the two frozen fields above: routing asks every window for its used
    # fraction, deadline and ceiling many times per request, and each answer used to re-read
    # the window's length from its name. Left out of eq, hash and repr (they add nothing).
    length: float | None = attrs.field(init=False, eq=False, repr=False)
    # When this reading stops being true: the reset time, else seen + length, else a TTL.
    deadline: float = attrs.field(init=False, eq=False, repr=False)
    fraction: float = attrs.field(init=False, eq=False, repr=False)  # used, clamped to 0..1
    limit: float = attrs.field(init=False, eq=False, repr=False)  # ceiling(window)

    def __attrs_post_init__(self) -> None:
        window = self.window
        length = window_length(window)
        if window.resets_at is not None:
            deadline = window.resets_at
        else:
            deadline = self.seen_at + (length if length is not None else UNKNOWN_WINDOW_TTL_S)
        used = window.used
        # Frozen: the derived fields are written once, here, as attrs' own __init__ does.
        set_field = object.__setattr__
        set_field(self, "length", length)
        set_field(self, "deadline", deadline)
        set_field(self, "fraction", 0.0 if used < 0.0 else 1.0 if used > 1.0 else used)
        set_field(self, "limit", ceiling_for(length))

    @property
    def name(self) -> str:
        return self.window.name

    def used_at(self, now: float) -> float:
        """Used fraction now; 0 once the reset has passed (the quota came back)."""
        return 0.0 if now >= self.deadline else self.fraction

    def over_ceiling(self, now: float) -> bool:
        # A window past its reset reads 0 used, below any ceiling.
        return now < self.deadline and self.fraction >= self.limit

    @property
    def account_wide(self) -> bool:
        return self.window.scope is None

    def limits(self, model: str | None) -> bool:
        """Whether this window limits a request for ``model`` (see QuotaWindow.scope)."""
        scope = self.window.scope
        return scope is None or _scope_limits(scope, model)

    def started(self, now: float) -> bool:
        """Whether this window's clock is known to be running (for dormant touch)."""
        if now >= self.deadline:
            return False
        return self.window.used > 0 or self.window.resets_at is not None


# Whether a scope limits a model is asked for every model window on every routing decision,
# and the answer depends on the two names only: remember the last few hundred pairs.
@functools.lru_cache(maxsize=512)
def _scope_limits(scope: str, model: str | None) -> bool:
    return scope_matches(scope, model)


@attrs.define(eq=False)
class AccountState:
    """Everything the pool has learned about one account. Mutated only by the pool."""

    name: str
    provider: ProviderName
    priority: int = 0
    disabled: bool = False
    plan: str | None = None
    windows: dict[str, ObservedWindow] = attrs.field(factory=dict)
    # Quota cooldown (a 429 with a quota signal, or a reading saying "exhausted").
    cooldown_until: float | None = None
    cooldown_reason: str = ""
    quota_fallback_level: int = 0  # consecutive quota 429s that gave no reset time
    # Short backoff (throttled / auth / transient); never touches the quota state.
    backoff_until: float | None = None
    backoff_reason: str = ""
    throttle_level: int = 0
    # Recent-error penalty, decaying from `penalty_at`.
    penalty: float = 0.0
    penalty_at: float = 0.0
    needs_relogin: str | None = None
    # Something only the account's owner can fix (see AccountAction): never routed.
    action: AccountAction | None = None
    in_flight: int = 0
    last_used: float | None = None
    touched: bool = False  # dormant touch spent since the windows were last seen started
    day: int = -1
    requests_today: int = 0
    tokens_today: TokenUsage = attrs.field(factory=TokenUsage)
    tokens_total: TokenUsage = attrs.field(factory=TokenUsage)

    def roll_day(self, now: float) -> None:
        """Reset the "today" counters when the UTC day changes."""
        day = int(now // DAY_S)
        if day != self.day:
            self.day = day
            self.requests_today = 0
            self.tokens_today = TokenUsage()


@attrs.frozen
class WindowView:
    name: str
    used: float  # 0 once resets_at has passed
    window_s: float | None
    resets_at: float | None
    ceiling: float
    scope: str | None = None  # None: the whole account's window; else the model(s) it limits


@attrs.frozen
class AccountView:
    """A snapshot of one account for `status`, the dashboard and the log."""

    name: str
    provider: ProviderName
    plan: str | None
    priority: int
    state: AccountStateName
    state_reason: str
    state_until: float | None  # when the account becomes usable again, if known
    windows: tuple[WindowView, ...]
    in_flight: int
    requests_today: int
    tokens_today: TokenUsage
    tokens_total: TokenUsage
    last_used: float | None
    pinned_conversations: int
    action: AccountAction | None = None  # with state "needs_action": what the user must do


@attrs.frozen
class PoolWindowUsage:
    name: str
    used: float  # mean used fraction over the pool's usable accounts
    window_s: float | None
    resets_at: float | None  # the earliest future reset among the accounts
    scope: str | None = None  # as QuotaWindow.scope


@attrs.frozen
class PoolUsage:
    """The pool's aggregate quota for one provider (served as Codex's wham/usage)."""

    provider: ProviderName
    windows: tuple[PoolWindowUsage, ...]
    accounts: int  # usable accounts counted (enabled, not needing re-login)
    available: bool  # at least one account is eligible right now
    plan: str | None


@attrs.frozen
class AccountRecord:
    """What one process shares with the others about an account (data/state.db, no secrets).

    Everything learned from upstream answers; not the settings (they come from config and
    files) and not ``in_flight`` (local to the process).
    """

    name: str
    provider: ProviderName
    windows: tuple[ObservedWindow, ...] = ()
    cooldown_until: float | None = None
    cooldown_reason: str = ""
    quota_fallback_level: int = 0
    backoff_until: float | None = None
    backoff_reason: str = ""
    throttle_level: int = 0
    penalty: float = 0.0
    penalty_at: float = 0.0
    needs_relogin: str | None = None
    action: AccountAction | None = None
    last_used: float | None = None
    day: int = -1
    requests_today: int = 0
    tokens_today: TokenUsage = attrs.field(factory=TokenUsage)
    tokens_total: TokenUsage = attrs.field(factory=TokenUsage)


@attrs.frozen
class PinRecord:
    """One conversation pin, as shared between processes."""

    provider: ProviderName
    key: str
    account: str
    last_used: float


def record_of(account: AccountState) -> AccountRecord:
    return AccountRecord(
        name=account.name,
        provider=account.provider,
        windows=tuple(account.windows.values()),
        cooldown_until=account.cooldown_until,
        cooldown_reason=account.cooldown_reason,
        quota_fallback_level=account.quota_fallback_level,
        backoff_until=account.backoff_until,
        backoff_reason=account.backoff_reason,
        throttle_level=account.throttle_level,
        penalty=account.penalty,
        penalty_at=account.penalty_at,
        needs_relogin=account.needs_relogin,
        action=account.action,
        last_used=account.last_used,
        day=account.day,
        requests_today=account.requests_today,
        tokens_today=account.tokens_today,
        tokens_total=account.tokens_total,
    )


def apply_record(account: AccountState, record: AccountRecord) -> None:
    """Overwrite the shared part of ``account`` with ``record``."""
    account.windows = {w.name: w for w in record.windows}
    account.cooldown_until = record.cooldown_until
    account.cooldown_reason = record.cooldown_reason
    account.quota_fallback_level = record.quota_fallback_level
    account.backoff_until = record.backoff_until
    account.backoff_reason = record.backoff_reason
    account.throttle_level = record.throttle_level
    account.penalty = record.penalty
    account.penalty_at = record.penalty_at
    account.needs_relogin = record.needs_relogin
    account.action = record.action
    account.last_used = record.last_used
    account.day = record.day
    account.requests_today = record.requests_today
    account.tokens_today = record.tokens_today
    account.tokens_total = record.tokens_total
