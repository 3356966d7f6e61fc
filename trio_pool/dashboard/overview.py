"""The overview: per provider, how much of each quota window the pool has used, how fast
it is going, and when it runs out at that pace.

Pure: no trio, no I/O, no clock; every time is unix seconds passed in as ``now``.

The burn rate comes from a short history of the pool's own readings (``BurnHistory``), fed
by a sampler every minute and on each overview request: the slope of used % over the last
hour, by least squares. Readings are what the upstreams reported, so the rate is honest
about what counts (other machines using the same accounts included), unlike a token count.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from trio_pool.accounts.model import AccountView, PoolUsage, PoolWindowUsage, ceiling
from trio_pool.providers.base import PROVIDERS, ProviderName, QuotaWindow

HISTORY_S = 3600.0
MIN_SPAN_S = 300.0  # fewer minutes of history than this: no rate yet (noise)
MIN_GAP_S = 10.0  # samples closer than this add nothing to the fit
MAX_SAMPLES = 400
# A pool mean only falls when an account's window reset (or the pool changed): the slope
# across such a drop means nothing, so the history starts again.
RESET_DROP = 0.005
RESET_MOVE_S = 60.0


@attrs.frozen
class Sample:
    at: float
    used: float  # fraction 0..1
    resets_at: float | None


@attrs.define(eq=False)
class BurnHistory:
    """Recent (now, used) readings per (provider, window name)."""

    history_s: float = HISTORY_S
    _samples: dict[tuple[str, str], deque[Sample]] = attrs.field(factory=dict, init=False)

    def observe(self, usage: PoolUsage, now: float) -> None:
        """Record the pool's current reading of each of the provider's windows."""
        for window in usage.windows:
            self.add(usage.provider, window.name, window.used, window.resets_at, now)

    def add(
        self, provider: str, window: str, used: float, resets_at: float | None, now: float
    ) -> None:
        samples = self._samples.setdefault((provider, window), deque(maxlen=MAX_SAMPLES))
        last = samples[-1] if samples else None
        if last is not None and _restarted(last, used, resets_at):
            samples.clear()
        elif last is not None and now - last.at < MIN_GAP_S:
            return
        samples.append(Sample(now, used, resets_at))
        while samples and samples[0].at < now - self.history_s:
            samples.popleft()

    def rate(self, provider: str, window: str, now: float) -> float | None:
        """The slope in %-points per hour over the history, or None with too little of it."""
        samples = [
            s for s in self._samples.get((provider, window), ()) if s.at >= now - self.history_s
        ]
        if len(samples) < 2 or samples[-1].at - samples[0].at < MIN_SPAN_S:
            return None
        return slope((s.at, s.used) for s in samples) * 3600 * 100


def _restarted(last: Sample, used: float, resets_at: float | None) -> bool:
    if used < last.used - RESET_DROP:
        return True
    if last.resets_at is None or resets_at is None:
        return False
    return resets_at > last.resets_at + RESET_MOVE_S


def slope(points: Iterable[tuple[float, float]]) -> float:
    """The least-squares slope of y over x (0 when x does not vary)."""
    pts = list(points)
    n = len(pts)
    mean_x = sum(x for x, _ in pts) / n
    mean_y = sum(y for _, y in pts) / n
    var = sum((x - mean_x) ** 2 for x, _ in pts)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in pts) / var


def runs_out_at(
    used_pct: float, limit_pct: float, rate: float | None, resets_at: float | None, now: float
) -> float | None:
    """When ``used_pct`` reaches ``limit_pct`` at ``rate`` %-points/h; None if never, or
    not before the window resets."""
    if rate is None or rate <= 0:
        return None
    at = now + max(0.0, limit_pct - used_pct) / rate * 3600
    if resets_at is not None and at >= resets_at:
        return None
    return at


def window_document(
    provider: str, window: PoolWindowUsage, history: BurnHistory, now: float
) -> dict[str, Any]:
    used_pct = round(window.used * 100, 2)
    rate = history.rate(provider, window.name, now)
    # The pool stops using an account at its ceiling (98 % / 99 %): that is "out".
    limit = ceiling(QuotaWindow(window.name, window.used, window.window_s, window.resets_at))
    return {
        "name": window.name,
        "used_pct": used_pct,
        "left_pct": round(max(0.0, 100 - used_pct), 2),
        "resets_at": window.resets_at,
        "window_s": window.window_s,
        "rate_pct_per_h": None if rate is None else round(rate, 3),
        "runs_out_at": runs_out_at(used_pct, limit * 100, rate, window.resets_at, now),
    }


def provider_document(
    usage: PoolUsage, views: Sequence[AccountView], history: BurnHistory, now: float
) -> dict[str, Any]:
    windows = sorted(usage.windows, key=lambda w: (w.window_s or 0, w.name))
    return {
        "provider": usage.provider,
        "accounts": len(views),
        "usable": sum(1 for v in views if v.state == "ok"),
        "plan": usage.plan,
        "windows": [window_document(usage.provider, w, history, now) for w in windows],
    }


def overview_document(
    usages: Mapping[ProviderName, PoolUsage],
    views: Sequence[AccountView],
    history: BurnHistory,
    last_24h: Mapping[str, int],
    now: float,
) -> dict[str, Any]:
    """GET /api/overview: every provider (in PROVIDERS order, also those without accounts)."""
    providers = [
        provider_document(usages[name], [v for v in views if v.provider == name], history, now)
        for name in PROVIDERS
        if name in usages
    ]
    keys = ("requests", "tokens", "errors", "failovers")
    return {
        "now": now,
        "providers": providers,
        "last_24h": {k: int(last_24h.get(k, 0)) for k in keys},
    }
