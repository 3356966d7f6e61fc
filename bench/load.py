"""Running one workload: ``count`` requests at a fixed concurrency, bounded in time.

Each worker owns one keep-alive connection and takes the next request index until the count
is reached or the time limit passes. Every reply that is not a 200, or whose body fails the
workload's check, is counted as an error and its first examples are kept for the report.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable, Sequence

import attrs
import trio

from bench.client import Connection, ConnectionLost

MAX_EXAMPLES = 5


@attrs.frozen
class Target:
    """Where to send, and the pre-encoded requests (index i uses requests[i % len])."""

    name: str  # "direct" or "proxy"
    host: str
    port: int
    requests: Sequence[bytes]


@attrs.define(eq=False)
class LoadResult:
    target: str
    planned: int
    concurrency: int
    ok: int = 0
    errors: Counter[str] = attrs.field(factory=Counter)
    examples: list[str] = attrs.field(factory=list)
    elapsed_s: float = 0.0
    ttfb_s: list[float] = attrs.field(factory=list)
    timed_out: bool = False

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    def ttfb_ms(self, quantile: float) -> float:
        if len(self.ttfb_s) < 2:
            return float("nan")
        cuts = statistics.quantiles(self.ttfb_s, n=100, method="inclusive")
        return cuts[round(quantile * 100) - 1] * 1000

    def note_error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{kind}: {detail[:300]}")


Check = Callable[[bytes], bool]


async def run_load(
    target: Target,
    *,
    count: int,
    concurrency: int,
    check: Check,
    time_limit_s: float,
    keep_ttfb: bool = False,
) -> LoadResult:
    """Send ``count`` requests with ``concurrency`` workers; never longer than ``time_limit_s``."""
    result = LoadResult(target.name, count, concurrency)
    next_index = 0
    requests = target.requests

    async def worker() -> None:
        nonlocal next_index
        conn = Connection(target.host, target.port)
        try:
            while next_index < count:
                index = next_index
                next_index += 1
                try:
                    reply = await conn.request(requests[index % len(requests)])
                except (OSError, ConnectionLost, trio.BrokenResourceError, ValueError) as exc:
                    result.note_error(type(exc).__name__, str(exc))
                    continue
                if reply.status != 200:
                    result.note_error(f"status {reply.status}", reply.body.decode(errors="replace"))
                elif not check(reply.body):
                    result.note_error("bad body", reply.body[-300:].decode(errors="replace"))
                else:
                    result.ok += 1
                    if keep_ttfb:
                        result.ttfb_s.append(reply.ttfb_s)
        finally:
            with trio.CancelScope(shield=True):
                await conn.aclose()

    started = time.perf_counter()
    with trio.move_on_after(time_limit_s) as scope:
        async with trio.open_nursery() as nursery:
            for _ in range(min(concurrency, count)):
                nursery.start_soon(worker)
    result.elapsed_s = time.perf_counter() - started
    if scope.cancelled_caught:
        result.timed_out = True
        missing = count - result.ok - result.error_count
        result.errors["not done (time limit)"] += missing
    return result
