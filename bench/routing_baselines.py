"""The two routers trio-pool's Pool is compared with, behind the Pool's own choose/report API.

Both remember a quota 429's reset time (as the simple proxies do) so that the comparison
measures the choice of account, not the failure handling: neither reads quota headers.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from trio_pool.accounts.pool import Exhausted, Lease
from trio_pool.providers.base import (
    ConversationKey,
    Outcome,
    OutcomeKind,
    ProviderName,
    QuotaReading,
)

# A quota 429 that names no reset time benches the account this long.
FALLBACK_COOLDOWN_S = 300.0


class Router(Protocol):
    """The part of trio_pool.accounts.pool.Pool the request flow uses."""

    def choose(
        self,
        provider: ProviderName,
        key: ConversationKey | None,
        now: float,
        *,
        exclude: frozenset[str] = frozenset(),
        model: str | None = None,
    ) -> Lease | Exhausted: ...

    def report(self, lease: Lease, outcome: Outcome, now: float) -> None: ...

    def observe(self, name: str, reading: QuotaReading, now: float) -> None: ...


@attrs.define(eq=False)
class _Cooling:
    """Accounts in a fixed order, each benched after a quota 429 until its reset."""

    names: list[str]
    until: dict[str, float] = attrs.field(factory=dict)
    _next_id: int = 1

    def usable(self, name: str, now: float, exclude: frozenset[str]) -> bool:
        return name not in exclude and self.until.get(name, 0.0) <= now

    def lease(self, name: str, provider: ProviderName, key: ConversationKey | None) -> Lease:
        self._next_id += 1
        return Lease(name, provider, key, pinned=False, fast=False, lease_id=self._next_id)

    def exhausted(self, now: float) -> Exhausted:
        ends = [t for t in self.until.values() if t > now]
        reasons = tuple((n, "cooling") for n in self.names)
        return Exhausted(min(ends, default=None), reasons)

    def cool(self, lease: Lease, outcome: Outcome, now: float) -> bool:
        """Bench the account after a quota answer; True when it was one."""
        if outcome.kind is not OutcomeKind.QUOTA:
            return False
        retry_at = outcome.retry_at
        self.until[lease.account] = retry_at if retry_at is not None else now + FALLBACK_COOLDOWN_S
        return True


@attrs.define(eq=False)
class RoundRobin:
    """Each request goes to the next account in turn; conversations are not pinned."""

    accounts: _Cooling
    _cursor: int = 0

    @classmethod
    def of(cls, names: list[str]) -> RoundRobin:
        return cls(_Cooling(list(names)))

    def choose(
        self,
        provider: ProviderName,
        key: ConversationKey | None,
        now: float,
        *,
        exclude: frozenset[str] = frozenset(),
        model: str | None = None,
    ) -> Lease | Exhausted:
        names = self.accounts.names
        for step in range(len(names)):
            name = names[(self._cursor + step) % len(names)]
            if self.accounts.usable(name, now, exclude):
                self._cursor = (self._cursor + step + 1) % len(names)
                return self.accounts.lease(name, provider, key)
        return self.accounts.exhausted(now)

    def report(self, lease: Lease, outcome: Outcome, now: float) -> None:
        self.accounts.cool(lease, outcome, now)

    def observe(self, name: str, reading: QuotaReading, now: float) -> None:
        return None


@attrs.define(eq=False)
class StickyUntilFail:
    """One active account takes every request until it answers a quota 429; then the next."""

    accounts: _Cooling
    _active: int = 0

    @classmethod
    def of(cls, names: list[str]) -> StickyUntilFail:
        return cls(_Cooling(list(names)))

    def choose(
        self,
        provider: ProviderName,
        key: ConversationKey | None,
        now: float,
        *,
        exclude: frozenset[str] = frozenset(),
        model: str | None = None,
    ) -> Lease | Exhausted:
        names = self.accounts.names
        for step in range(len(names)):
            index = (self._active + step) % len(names)
            if self.accounts.usable(names[index], now, exclude):
                if names[self._active] not in exclude:
                    self._active = index  # move on only when the active one cannot serve
                return self.accounts.lease(names[index], provider, key)
        return self.accounts.exhausted(now)

    def report(self, lease: Lease, outcome: Outcome, now: float) -> None:
        if self.accounts.cool(lease, outcome, now):
            names = self.accounts.names
            if names[self._active] == lease.account:
                self._active = (self._active + 1) % len(names)

    def observe(self, name: str, reading: QuotaReading, now: float) -> None:
        return None
