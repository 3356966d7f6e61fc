"""How fast the pool is using each quota window: a short history of its own readings.

Fed by a sampler every minute (``app``) and on each overview request; the rate is the
slope of used % over the last hour, by least squares. Readings are what the upstreams
reported, so the rate is honest about what counts (other machines using the same accounts
included), unlike a token count.

Pure: no trio, no I/O, no clock; every time is unix seconds passed in as ``now``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import attrs

from trio_pool.accounts.model import PoolUsage

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
