"""What a routing run measured, judged against the simulated accounts' true quota state."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

from bench.routing_workload import T0, ConversationPlan
from trio_pool.accounts.model import LONG_CEILING, LONG_WINDOW_S, SHORT_CEILING
from trio_pool.testing.accounts import SimAccount, SimWindow

# Room smaller than one cheap turn is rounding noise (the headers carry 4 decimals), not
# headroom a client could use.
MIN_HEADROOM_UNITS = 0.5


def used_now(window: SimWindow, now: float) -> float:
    """Units used now, without starting a window (a passed reset empties it)."""
    if window.resets_at is not None and now >= window.resets_at:
        return 0.0
    return window.used


def servable(window: SimWindow, now: float) -> float:
    """Units the window can still serve below the router's ceiling."""
    ceiling = LONG_CEILING if window.length_s >= LONG_WINDOW_S else SHORT_CEILING
    return max(ceiling * window.capacity - used_now(window, now), 0.0)


def headroom(sim: SimAccount, now: float, model: str | None = None) -> float:
    """Units the account can serve now (for ``model``) before any window limiting it reaches
    its ceiling."""
    return min((servable(w, now) for w in sim.windows if w.limits(model)), default=0.0)


def has_quota(sim: SimAccount, now: float, model: str | None = None) -> bool:
    """Not refused by the upstream (for ``model``): every window limiting it below 100 %."""
    return all(used_now(w, now) < w.capacity for w in sim.windows if w.limits(model))


@attrs.define(eq=False)
class _Conversation:
    account: str | None = None
    last_at: float = 0.0
    turns: int = 0
    unforced: int = 0
    forced: int = 0
    after_idle: int = 0


@attrs.define(eq=False)
class Metrics:
    label: str
    sims: dict[str, SimAccount]
    pin_idle_ttl_s: float
    demand_turns: int = 0
    demand_units: float = 0.0
    served_turns: int = 0
    served_units: float = 0.0
    upstream_429s: int = 0  # attempts refused by the upstream (hidden from the client by failover)
    client_429s: int = 0
    usage_polls: int = 0  # trio-pool only: the proxy's usage poller
    client_429s_with_headroom: int = 0  # some account was still below its ceilings
    client_429s_with_quota: int = 0  # some account was still below 100 % in every window
    first_429_at: float | None = None
    share_before_first_429: float | None = None
    units_by_account: dict[str, float] = attrs.field(factory=dict)
    refresh_calls: Counter[str] = attrs.field(factory=Counter)
    rotations: Counter[str] = attrs.field(factory=Counter)
    reused_refresh_tokens: int = 0
    # Weekly quota that reset unused (below the ceiling): capacity lost for good.
    lost_at_reset: float = 0.0
    conversations: dict[int, _Conversation] = attrs.field(factory=dict)
    _reset_seen: dict[int, float] = attrs.field(factory=dict)

    def tick(self, now: float) -> None:
        """Count the room left in every long window whose reset has just passed."""
        for sim in self.sims.values():
            for window in sim.windows:
                resets_at = window.resets_at
                if window.length_s < LONG_WINDOW_S or resets_at is None or now < resets_at:
                    continue
                if self._reset_seen.get(id(window)) != resets_at:
                    self._reset_seen[id(window)] = resets_at
                    self.lost_at_reset += servable(window, resets_at - 1e-6)

    def demand(self, plans: list[ConversationPlan]) -> None:
        self.demand_turns = sum(len(p.turns) for p in plans)
        self.demand_units = sum(t.cost for p in plans for t in p.turns)

    def served(
        self,
        conv: int,
        account: str,
        cost: float,
        tried: set[str],
        now: float,
        model: str | None = None,
    ) -> None:
        state = self.conversations.setdefault(conv, _Conversation())
        previous = state.account
        if previous is not None and previous != account:
            if now - state.last_at > self.pin_idle_ttl_s:
                state.after_idle += 1  # the prompt cache had expired anyway
            elif (
                previous in tried or headroom(self.sims[previous], now, model) < MIN_HEADROOM_UNITS
            ):
                state.forced += 1
            else:
                state.unforced += 1
        state.account = account
        state.last_at = now
        state.turns += 1
        self.served_turns += 1
        self.served_units += cost
        self.units_by_account[account] = self.units_by_account.get(account, 0.0) + cost

    def client_429(
        self, conv: int, sims: dict[str, SimAccount], now: float, model: str | None = None
    ) -> None:
        self.client_429s += 1
        if any(headroom(s, now, model) >= MIN_HEADROOM_UNITS for s in sims.values()):
            self.client_429s_with_headroom += 1
        if any(has_quota(s, now, model) for s in sims.values()):
            self.client_429s_with_quota += 1
        if self.first_429_at is None:
            self.first_429_at = now
            # The capacity that could have served this request: its model's.
            left = sum(headroom(s, now, model) for s in sims.values())
            total = self.served_units + left + self.lost_at_reset
            self.share_before_first_429 = self.served_units / total if total > 0 else 1.0

    def refresh_call(self, name: str, *, reused: bool) -> None:
        self.refresh_calls[name] += 1
        self.reused_refresh_tokens += int(reused)

    def rotation(self, name: str) -> None:
        self.rotations[name] += 1

    # -- summaries ----------------------------------------------------------------------------

    def switches_per_100(self, kind: str) -> float:
        turns = sum(c.turns for c in self.conversations.values())
        count = sum(getattr(c, kind) for c in self.conversations.values())
        return 100.0 * count / turns if turns else 0.0

    def worst_unforced_per_100(self, min_turns: int = 10) -> float:
        """The highest unforced switch rate of any one conversation (of at least min_turns)."""
        rates = [
            100.0 * c.unforced / c.turns
            for c in self.conversations.values()
            if c.turns >= min_turns
        ]
        return max(rates, default=0.0)

    def conversations_over(self, limit: float, min_turns: int = 10) -> int:
        return sum(
            1
            for c in self.conversations.values()
            if c.turns >= min_turns and 100.0 * c.unforced / c.turns > limit
        )

    def as_json(self) -> dict[str, Any]:
        names = sorted(self.sims)
        return {
            "label": self.label,
            "demand_turns": self.demand_turns,
            "served_turns": self.served_turns,
            "demand_units": round(self.demand_units, 1),
            "served_units": round(self.served_units, 1),
            "client_429s": self.client_429s,
            "client_429s_with_headroom": self.client_429s_with_headroom,
            "client_429s_with_quota_left": self.client_429s_with_quota,
            "upstream_429s": self.upstream_429s,
            "first_client_429_after_h": (
                None if self.first_429_at is None else round((self.first_429_at - T0) / 3600, 2)
            ),
            "share_of_capacity_used_before_first_429": self.share_before_first_429,
            "weekly_units_lost_at_reset": round(self.lost_at_reset, 1),
            "unforced_switches_per_100_turns": round(self.switches_per_100("unforced"), 3),
            "forced_switches_per_100_turns": round(self.switches_per_100("forced"), 3),
            "switches_after_idle_per_100_turns": round(self.switches_per_100("after_idle"), 3),
            "worst_conversation_unforced_per_100": round(self.worst_unforced_per_100(), 2),
            "conversations_over_2_unforced_per_100": self.conversations_over(2.0),
            "units_by_account": {n: round(self.units_by_account.get(n, 0.0), 1) for n in names},
            "refresh_calls": {n: self.refresh_calls[n] for n in names},
            "rotations": {n: self.rotations[n] for n in names},
            "reused_refresh_tokens": self.reused_refresh_tokens,
            "usage_polls": self.usage_polls,
        }
