"""What the usage ledger costs the proxy: CPU per small request, ledger on versus off.

Two fresh proxies on the same simulator, one with ``ledger = true`` and one with
``ledger = false``, take the same small requests in short alternating rounds (on-off, off-on,
...), so that drift in the box's load (two cores shared with the simulator and the load
generator) hits both alike. The cost is the median of the rounds' paired differences in
proxy CPU per request, as a share of the ledger-off proxy's median. Its twin, measured in this
process where nothing else competes: the CPU of the ledger's own code per request (the tally
and its row, then the batched write through the state store's worker thread).
"""

from __future__ import annotations

import math
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from bench import procs
from bench.load import Target, run_load
from bench.report import Metric
from bench.workloads import HOST, small_ok
from trio_pool.providers.base import TokenUsage
from trio_pool.state.store import StateStore
from trio_pool.usage.ledger import Tally, hash_key, model_of
from trio_pool.usage.store import Ledger

TARGET_PCT = 5.0


@attrs.frozen
class LedgerPlan:
    rounds: int = 10  # pairs of runs (one on, one off)
    per_round: int = 1200
    warmup: int = 600
    concurrency: int = 16
    code_rows: int = 20_000  # requests for the in-process measurement

    def scaled(self, factor: float) -> LedgerPlan:
        return LedgerPlan(
            max(4, math.ceil(self.rounds * factor)),
            max(200, math.ceil(self.per_round * factor)),
            max(100, math.ceil(self.warmup * factor)),
            self.concurrency,
            max(2000, math.ceil(self.code_rows * factor)),
        )


@attrs.define
class Paired:
    """Proxy CPU per request (µs) of each round, on and off."""

    on_us: list[float] = attrs.field(factory=list)
    off_us: list[float] = attrs.field(factory=list)
    errors: int = 0

    @property
    def diffs(self) -> list[float]:
        return [a - b for a, b in zip(self.on_us, self.off_us, strict=True)]

    @property
    def cost_us(self) -> float:
        return statistics.median(self.diffs) if self.diffs else math.nan

    @property
    def base_us(self) -> float:
        return statistics.median(self.off_us) if self.off_us else math.nan


async def _cpu_per_request(
    child: procs.Child, target: Target, count: int, conc: int
) -> tuple[float, int]:
    child.check_alive()
    before = procs.cpu_seconds(child.pid)
    result = await run_load(target, count=count, concurrency=conc, check=small_ok, time_limit_s=60)
    cpu = procs.cpu_seconds(child.pid) - before
    return (cpu / result.ok * 1e6 if result.ok else math.nan), result.error_count


async def paired_rounds(
    plan: LedgerPlan, on: tuple[procs.Child, Target], off: tuple[procs.Child, Target]
) -> Paired:
    paired = Paired()
    for child, target in (on, off):
        await _cpu_per_request(child, target, plan.warmup, plan.concurrency)
    for n in range(plan.rounds):
        order = (on, off) if n % 2 == 0 else (off, on)
        seen: dict[int, float] = {}
        for child, target in order:
            us, errors = await _cpu_per_request(child, target, plan.per_round, plan.concurrency)
            seen[child.pid] = us
            paired.errors += errors
        paired.on_us.append(seen[on[0].pid])
        paired.off_us.append(seen[off[0].pid])
    return paired


@attrs.frozen
class CodeCost:
    """CPU (µs) per request spent in the ledger's code, in this process."""

    request_path_us: float  # model, key hash, tally, row, record: on the event loop
    flush_us: float  # the batched writes (worker thread and the hop to it)


async def code_cost(rows: int, body: bytes, path: str) -> CodeCost:
    """The ledger's code on ``rows`` requests like the benchmark's, timed per thread."""
    with tempfile.TemporaryDirectory(prefix="trio-pool-ledger-") as tmp:
        store = await StateStore.open(Path(tmp))
        ledger = Ledger(retention_days=90.0)
        request_s = flush_s = 0.0
        try:
            done = 0
            while done < rows:
                chunk = min(1000, rows - done)
                started = time.thread_time()
                for i in range(chunk):
                    tally = Tally(
                        "claude",
                        time.time(),
                        float(i),
                        model=model_of(body, path),
                        conversation=hash_key(None),
                    )
                    tally.account, tally.status, tally.attempts = "claude/bench0", 200, 1
                    tally.ttfb_s, tally.usage, tally.bytes = 0.001, TokenUsage(12, 0, 7, 0), 420
                    ledger.record(tally.row(float(i) + 0.002))
                request_s += time.thread_time() - started
                started = time.process_time()  # both threads: nothing else runs here
                await ledger.flush(store)
                flush_s += time.process_time() - started
                done += chunk
        finally:
            await store.aclose()
    return CodeCost(request_s / rows * 1e6, flush_s / rows * 1e6)


def verdict(cost_us: float, base_us: float) -> tuple[float, str]:
    pct = cost_us / base_us * 100 if base_us else math.nan
    return pct, "PASS" if pct < TARGET_PCT else "MISS"


def summary(plan: LedgerPlan, paired: Paired, code: CodeCost) -> list[str]:
    """The lines the benchmark prints (the first is the issue's yardstick)."""
    base = paired.base_us
    pct, status = verdict(paired.cost_us, base)
    code_us = code.request_path_us + code.flush_us
    code_pct, code_status = verdict(code_us, base)
    diffs = sorted(paired.diffs)
    return [
        f"ledger cost: {paired.cost_us:+.0f} µs/request = {pct:.1f}% of proxy CPU "
        f"({base:.0f} µs/request with the ledger off; target < {TARGET_PCT:g}%) {status}",
        f"  median of {plan.rounds} paired rounds of {plan.per_round} small requests, "
        f"on/off alternating; paired differences {diffs[0]:+.0f} .. {diffs[-1]:+.0f} µs",
        f"ledger code (in-process, per request): {code_us:.1f} µs = {code_pct:.1f}% of proxy "
        f"CPU {code_status} (request path {code.request_path_us:.1f} µs, batched writes "
        f"{code.flush_us:.1f} µs)",
    ]


def as_json(paired: Paired, code: CodeCost) -> dict[str, Any]:
    return {
        "on_us": [round(v, 1) for v in paired.on_us],
        "off_us": [round(v, 1) for v in paired.off_us],
        "cost_us": round(paired.cost_us, 1),
        "base_us": round(paired.base_us, 1),
        "errors": paired.errors,
        "code_request_path_us": round(code.request_path_us, 2),
        "code_flush_us": round(code.flush_us, 2),
    }


def metrics(paired: Paired, code: CodeCost) -> list[Metric]:
    pct, _ = verdict(paired.cost_us, paired.base_us)
    code_us = code.request_path_us + code.flush_us
    return [
        Metric("ledger CPU per small request (on - off)", "µs", None, paired.cost_us),
        Metric("  as a share of proxy CPU", "%", None, pct, f"< {TARGET_PCT:g}", TARGET_PCT),
        Metric("ledger code CPU per request (in-process)", "µs", None, code_us),
    ]


def measure(
    plan: LedgerPlan,
    workdir: Path,
    sim_base: str,
    extra: tuple[str, ...],
    requests_for: Callable[[int], list[bytes]],
    ready: Callable[[procs.Child, int], Awaitable[None]],
) -> Paired:
    """Start the ledger-on and ledger-off proxies, run the paired rounds, stop them.

    ``extra``: the run's --set lines (any ``ledger`` line is replaced); ``requests_for(port)``:
    the small requests as sent to that port; ``ready``: waits until a proxy answers.
    """
    kept = tuple(line for line in extra if line.split("=")[0].strip() != "ledger")
    sides: list[tuple[procs.Child, Target]] = []
    try:
        for name, on in (("proxy-ledger-on", "true"), ("proxy-ledger-off", "false")):
            port = procs.free_port()
            child = procs.start_proxy(
                workdir, port, sim_base, profile_to=None, extra=(*kept, f"ledger = {on}"), name=name
            )
            sides.append((child, Target(name, HOST, port, requests_for(port))))
            trio.run(ready, child, port)
        return trio.run(paired_rounds, plan, sides[0], sides[1])
    finally:
        for child, _ in sides:
            child.stop()
