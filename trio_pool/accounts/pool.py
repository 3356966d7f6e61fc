"""The account pool: leases, conversation pins, outcomes and snapshots (design.md §3).

A pure state machine: every method takes ``now`` (unix seconds) and no method does I/O,
so the routing is reproducible in tests and in the simulation. The trio shell asks
``choose()`` for a Lease, runs the request, and hands the result back with ``report()``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import attrs

from trio_pool.accounts import cooldown
from trio_pool.accounts.model import (
    AccountAction,
    AccountRecord,
    AccountState,
    AccountView,
    PinRecord,
    PoolUsage,
    apply_record,
    record_of,
)
from trio_pool.accounts.routing import assess, clearly_better, sort_key, usable, wants_fast
from trio_pool.accounts.snapshot import account_view, aggregate_usage
from trio_pool.config import RoutingConfig
from trio_pool.providers.base import (
    REQUEST_MODEL,
    ConversationKey,
    Outcome,
    ProviderName,
    QuotaReading,
    TokenUsage,
    normal_model,
)

__all__ = ["Exhausted", "Lease", "Pool"]


@attrs.frozen
class Lease:
    account: str  # "codex/work"
    provider: ProviderName
    key: ConversationKey | None
    pinned: bool  # True when the conversation's existing pin was honoured
    # Codex fast_mode decision: set service_tier="priority" (the shell skips it when the
    # client already chose a tier).
    fast: bool
    lease_id: int
    model: str | None = None  # the request's model: model windows and model 429s apply to it


@attrs.frozen
class Exhausted:
    # Earliest unix time an account of the provider becomes usable (None = unknown / never,
    # e.g. every account needs re-login).
    retry_at: float | None
    # (account name, why it is unavailable), for every account of the provider.
    reasons: tuple[tuple[str, str], ...]


@attrs.frozen
class _Pin:
    account: str
    last_used: float


@attrs.define(eq=False)
class Pool:
    """Every account of every provider, with what has been learned about each."""

    routing: RoutingConfig
    _accounts: dict[str, AccountState] = attrs.field(factory=dict, init=False)
    _pins: dict[tuple[ProviderName, str], _Pin] = attrs.field(factory=dict, init=False)
    _leases: dict[int, str] = attrs.field(factory=dict, init=False)
    _next_lease_id: int = attrs.field(default=1, init=False)
    _changes: int = attrs.field(default=0, init=False)
    # No pin was last used before this time (a lower bound): while it is within the idle TTL
    # no pin can have expired, and routing skips the scan of every pin.
    _pins_since: float = attrs.field(default=math.inf, init=False)

    # -- accounts ---------------------------------------------------------------------------

    def set_account(
        self,
        name: str,
        provider: ProviderName,
        *,
        priority: int = 0,
        disabled: bool = False,
        plan: str | None = None,
    ) -> None:
        """Add an account or update its settings; learned state is kept across updates."""
        account = self._accounts.get(name)
        if account is None or account.provider != provider:
            self._drop_pins_to(name)
            account = self._accounts[name] = AccountState(name, provider)
        account.priority = priority
        account.disabled = disabled
        if plan is not None:
            account.plan = plan

    def remove_account(self, name: str) -> None:
        self._accounts.pop(name, None)
        self._drop_pins_to(name)

    def set_needs_relogin(self, name: str, reason: str) -> None:
        """A permanent refresh failure: out of rotation until the credentials change."""
        if name in self._accounts:
            self._accounts[name].needs_relogin = reason or "refresh failed"
            self._changes += 1

    def clear_needs_relogin(self, name: str) -> None:
        if name in self._accounts:
            self._accounts[name].needs_relogin = None
            self._changes += 1

    def set_action(self, name: str, action: AccountAction) -> None:
        """Something only the user can fix: out of rotation (and out of the capacity
        figures) until ``clear_action``, which the registry calls when the file changes."""
        account = self._accounts.get(name)
        if account is not None and account.action != action:
            account.action = action
            self._changes += 1

    def clear_action(self, name: str, kind: str | None = None) -> None:
        """End the account's action (only one of ``kind``, when given)."""
        account = self._accounts.get(name)
        if account is None or account.action is None:
            return
        if kind is None or account.action.kind == kind:
            account.action = None
            self._changes += 1

    def action_of(self, name: str) -> AccountAction | None:
        account = self._accounts.get(name)
        return None if account is None else account.action

    # -- routing ----------------------------------------------------------------------------

    def choose(
        self,
        provider: ProviderName,
        key: ConversationKey | None,
        now: float,
        *,
        exclude: frozenset[str] = frozenset(),
        use: bool = True,
        model: str | None = None,
    ) -> Lease | Exhausted:
        """Lease the best account for one attempt; ``exclude`` holds accounts already tried.

        ``model`` is the request's model: an account whose window for that model is spent
        is skipped, and scores count that model's windows beside the account-wide ones.

        ``use=False`` for side calls (model lists, set-up calls): they need credentials but
        are not use of the account, so they touch no counters, pins or last-use times.
        """
        self._expire_pins(now)
        candidates = [a for a in self._accounts.values() if a.provider == provider]
        eligible = [a for a in candidates if a.name not in exclude and usable(a, now, model)]
        if not eligible:
            return self._exhausted(candidates, now, model)
        # Hard keys (turn state, WebSocket sessions) stick whatever `sticky` says.
        use_pins = key is not None and (key.hard or self.routing.sticky != "off")
        pin_key = None if key is None else (provider, key.value)
        chosen: AccountState | None = None
        if use_pins and pin_key is not None and key is not None:
            pin = self._pins.get(pin_key)
            held = next((a for a in eligible if pin is not None and a.name == pin.account), None)
            if held is not None and (
                key.hard
                or self.routing.sticky == "always"
                or not self._better_elsewhere(held, eligible, now, model)
            ):
                chosen = held
        pinned = chosen is not None
        if chosen is None and len(eligible) == 1:
            chosen = eligible[0]  # nothing to compare: the sort keys would not matter
        elif chosen is None:
            dormant_touch = self.routing.dormant_touch
            chosen = min(
                eligible,
                key=lambda a: sort_key(a, now, dormant_touch=dormant_touch, model=model),
            )
        chosen.in_flight += 1
        if use:
            chosen.roll_day(now)
            chosen.requests_today += 1
            chosen.last_used = now
            chosen.touched = True
            if use_pins and pin_key is not None:
                self._set_pin(pin_key, _Pin(chosen.name, now))
        lease = Lease(
            account=chosen.name,
            provider=provider,
            key=key,
            pinned=pinned,
            fast=self._fast(chosen, now, model),
            lease_id=self._next_lease_id,
            model=model,
        )
        self._leases[lease.lease_id] = chosen.name
        self._next_lease_id += 1
        self._changes += 1
        return lease

    def holds(self, lease: Lease) -> bool:
        """Whether ``lease`` is still open (not reported yet)."""
        return lease.lease_id in self._leases

    def report(self, lease: Lease, outcome: Outcome, now: float) -> None:
        """End the lease and apply the outcome's effect; a second report of a lease is ignored."""
        name = self._leases.pop(lease.lease_id, None)
        account = None if name is None else self._accounts.get(name)
        if account is None:
            return
        account.in_flight = max(account.in_flight - 1, 0)
        if outcome.scope == REQUEST_MODEL:
            # The upstream said "this model's quota", not which model: the request's. With no
            # model known, the whole account cools (the safe side).
            scope = None if lease.model is None else normal_model(lease.model)
            outcome = attrs.evolve(outcome, scope=scope)
        cooldown.apply_outcome(account, outcome, now)
        self._changes += 1

    def observe(self, name: str, reading: QuotaReading, now: float) -> None:
        """A quota reading from anywhere (response headers, stream events, usage poll)."""
        if name in self._accounts:
            cooldown.apply_reading(self._accounts[name], reading, now)
            self._changes += 1

    def window_use(self, name: str, now: float) -> dict[str, tuple[float, float | None]]:
        """Each window of the account: (used fraction now, window length if known)."""
        account = self._accounts.get(name)
        if account is None:
            return {}
        return {n: (w.used_at(now), w.length) for n, w in account.windows.items()}

    def provider_size(self, name: str) -> int:
        """How many accounts the provider of account ``name`` has (0 for an unknown name)."""
        account = self._accounts.get(name)
        if account is None:
            return 0
        return sum(1 for a in self._accounts.values() if a.provider == account.provider)

    def record_usage(self, name: str, usage: TokenUsage, now: float) -> None:
        account = self._accounts.get(name)
        if account is not None:
            account.roll_day(now)
            account.tokens_today += usage
            account.tokens_total += usage
            self._changes += 1

    def next_change(
        self, provider: ProviderName, now: float, model: str | None = None
    ) -> float | None:
        """Earliest time an account of the provider that cannot serve ``model`` now becomes
        usable (None: none will)."""
        ends = [
            s.until
            for a in self._accounts.values()
            if a.provider == provider
            for s in [assess(a, now, model)]
            if not s.usable and s.until is not None
        ]
        return min(ends, default=None)

    def same_plan(self, name: str) -> frozenset[str]:
        """Every account of ``name``'s provider on ``name``'s plan (an unknown plan counts
        as one more plan), ``name`` included."""
        account = self._accounts.get(name)
        if account is None:
            return frozenset({name})
        return frozenset(
            a.name
            for a in self._accounts.values()
            if a.provider == account.provider and a.plan == account.plan
        )

    def other_plan_usable(self, name: str, now: float) -> bool:
        """True when an account of ``name``'s provider on another plan could serve now."""
        account = self._accounts.get(name)
        if account is None:
            return False
        return any(
            a.provider == account.provider and a.plan != account.plan and assess(a, now).usable
            for a in self._accounts.values()
        )

    def pin(self, provider: ProviderName, key: str, account: str, now: float) -> None:
        """Pin ``key`` to ``account`` (a Gemini operation to the account that started it)."""
        if account in self._accounts:
            self._set_pin((provider, key), _Pin(account, now))
            self._changes += 1

    def pinned_account(self, provider: ProviderName, key: str, now: float) -> str | None:
        """The account a conversation is pinned to, if the pin is still alive."""
        pin = self._pins.get((provider, key))
        return pin.account if pin is not None and self._pin_alive(pin, now) else None

    # -- shared state (data/state.db) -------------------------------------------------------

    @property
    def changes(self) -> int:
        """Grows on every change worth sharing; the sync service polls it to write soon."""
        return self._changes

    def export(self, now: float) -> list[AccountRecord]:
        """What this pool learned about each account, for other processes and restarts."""
        for account in self._accounts.values():
            account.roll_day(now)
        return [record_of(account) for account in self._accounts.values()]

    def adopt(self, records: Iterable[AccountRecord]) -> None:
        """Take these records' values as the accounts' learned state (already merged).

        Records of unknown accounts (or of another provider) are ignored; settings,
        ``in_flight`` and the dormant-touch mark stay as they are.
        """
        for record in records:
            a = self._accounts.get(record.name)
            if a is None or a.provider != record.provider:
                continue
            apply_record(a, record)

    def export_pins(self, now: float) -> list[PinRecord]:
        """Every live conversation pin."""
        self._expire_pins(now)
        return [
            PinRecord(provider, key, pin.account, pin.last_used)
            for (provider, key), pin in self._pins.items()
        ]

    def merge_pins(self, records: Iterable[PinRecord], now: float) -> None:
        """Pins from elsewhere: the most recently used pin of a conversation wins."""
        for record in records:
            target = self._accounts.get(record.account)
            if target is None or target.provider != record.provider:
                continue
            pin = _Pin(record.account, record.last_used)
            if not self._pin_alive(pin, now):
                continue
            current = self._pins.get((record.provider, record.key))
            if current is None or current.last_used < record.last_used:
                self._set_pin((record.provider, record.key), pin)

    # -- snapshots --------------------------------------------------------------------------

    def accounts(self, now: float, provider: ProviderName | None = None) -> list[AccountView]:
        pins: dict[str, int] = {}
        for pin in self._pins.values():
            if self._pin_alive(pin, now):
                pins[pin.account] = pins.get(pin.account, 0) + 1
        return [
            account_view(a, now, pins.get(a.name, 0))
            for a in self._accounts.values()
            if provider is None or a.provider == provider
        ]

    def pool_usage(self, provider: ProviderName, now: float) -> PoolUsage:
        """Used fraction of the pool's combined capacity per window name, earliest reset."""
        members = [
            a
            for a in self._accounts.values()
            if a.provider == provider
            and not a.disabled
            and a.needs_relogin is None
            and a.action is None
        ]
        return aggregate_usage(provider, members, now)

    # -- internals --------------------------------------------------------------------------

    def _better_elsewhere(
        self, held: AccountState, eligible: list[AccountState], now: float, model: str | None
    ) -> bool:
        if self.routing.sticky != "auto":
            return False
        strength = self.routing.sticky_strength
        return any(
            clearly_better(held, other, now, strength=strength, model=model)
            for other in eligible
            if other is not held
        )

    def _fast(self, account: AccountState, now: float, model: str | None) -> bool:
        if account.provider != "codex" or self.routing.fast_mode == "off":
            return False
        return self.routing.fast_mode == "always" or wants_fast(account, now, model)

    def _exhausted(
        self, candidates: list[AccountState], now: float, model: str | None
    ) -> Exhausted:
        reasons = []
        ends = []
        for account in candidates:
            state = assess(account, now, model)
            if state.usable:
                # Usable, but this request already failed on it: it does not make the
                # provider usable again for this request, so it sets no retry time.
                reasons.append((account.name, "already tried for this request"))
                continue
            reasons.append((account.name, state.reason))
            if state.until is not None:
                ends.append(state.until)
        if not candidates:
            return Exhausted(None, ())
        return Exhausted(min(ends, default=None), tuple(reasons))

    def _pin_alive(self, pin: _Pin, now: float) -> bool:
        return now - pin.last_used <= self.routing.pin_idle_ttl_s

    def _set_pin(self, key: tuple[ProviderName, str], pin: _Pin) -> None:
        self._pins[key] = pin
        self._pins_since = min(self._pins_since, pin.last_used)

    def _expire_pins(self, now: float) -> None:
        if now - self._pins_since <= self.routing.pin_idle_ttl_s:
            return  # every pin was used within the TTL (see _pins_since)
        dead = [k for k, pin in self._pins.items() if not self._pin_alive(pin, now)]
        for k in dead:
            del self._pins[k]
        self._pins_since = min((pin.last_used for pin in self._pins.values()), default=math.inf)

    def _drop_pins_to(self, name: str) -> None:
        dead = [k for k, pin in self._pins.items() if pin.account == name]
        for k in dead:
            del self._pins[k]
