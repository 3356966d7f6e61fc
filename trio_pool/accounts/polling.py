"""When to ask a provider's usage endpoint about an account (pure; takes ``now``).

Usage polls learn the quota windows of accounts that have not been used recently, so the
router can compare them with the busy ones. They are probes, not traffic: they never go
through ``Pool.choose``/``report``, never count as requests or errors, and are never sent
for an account known to be cooling, backing off, disabled or needing a new login (peers
probed cooled accounts once a minute for days: better-ccflare #199).
"""

from __future__ import annotations

import attrs

from trio_pool.accounts.model import AccountView

MIN_INTERVAL_S = 300.0  # at most once per 5 minutes per account
RECENT_USE_S = 300.0  # an account used this recently already reports its windows itself
BACKOFF_FIRST_S = 600.0  # the usage endpoint itself answered 429 (it rate-limits: bccf #86)
BACKOFF_MAX_S = 3600.0


@attrs.define
class PollSchedule:
    last_poll: dict[str, float] = attrs.field(factory=dict)
    backoff_until: dict[str, float] = attrs.field(factory=dict)
    backoff_s: dict[str, float] = attrs.field(factory=dict)

    def due(self, views: list[AccountView], now: float) -> list[str]:
        """The accounts to poll now, least recently polled first."""
        names = [
            view.name
            for view in views
            if view.state == "ok"
            and (view.last_used is None or now - view.last_used >= RECENT_USE_S)
            and now - self.last_poll.get(view.name, -MIN_INTERVAL_S) >= MIN_INTERVAL_S
            and now >= self.backoff_until.get(view.name, 0.0)
        ]
        return sorted(names, key=lambda name: self.last_poll.get(name, 0.0))

    def polled(self, name: str, status: int | None, now: float) -> None:
        """Record a poll's result: 429 backs off (doubling); anything else waits the interval."""
        self.last_poll[name] = now
        if status == 429:
            delay = min(BACKOFF_MAX_S, self.backoff_s.get(name, BACKOFF_FIRST_S / 2) * 2)
            self.backoff_s[name] = delay
            self.backoff_until[name] = now + delay
        else:
            self.backoff_s.pop(name, None)
            self.backoff_until.pop(name, None)

    def forget(self, known: set[str]) -> None:
        """Drop accounts that left the pool."""
        for table in (self.last_poll, self.backoff_until, self.backoff_s):
            for name in [n for n in table if n not in known]:
                del table[name]
