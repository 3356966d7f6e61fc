"""What the usage ledger costs the proxy: CPU per small request, ledger on versus off.

Two fresh proxies on the same simulator, one with ``ledger = true`` and one with
``ledger = false``, take the same small requests *at the same time*, in short rounds. Run one
after the other, two runs on this 2-core box (shared with the simulator and the load
generator) differ by far more than the ledger costs; run together, both see the same load,
and the median of the rounds' paired differences is steady (which proxy's load starts first
alternates). The CPU (per-thread schedstat, in nanoseconds) is split into the event loop's
thread and the others (where the state store's worker writes the ledger).

Its twin, timed in this process where nothing competes: the CPU of the ledger's own code per
request (the tally and its row, the record, the batched write through the store's thread).
``ledger = false`` still builds the tally and its row (the metrics read them), so the on/off
difference leaves that part out; the twin counts it.
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
SIDES = ("on", "off")


@attrs.frozen
class LedgerPlan:
    rounds: int = 16
    per_round: int = 1200  # requests to each proxy per round
    warmup: int = 500
    concurrency: int = 16  # per proxy, as in the small-request workload
    code_rows: int = 20_000  # requests for the in-process timing

    def scaled(self, factor: float) -> LedgerPlan:
        return LedgerPlan(
            max(4, math.ceil(self.rounds * factor)),
            max(300, math.ceil(self.per_round * factor)),
            max(100, math.ceil(self.warmup * factor)),
            self.concurrency,
            max(2000, math.ceil(self.code_rows * factor)),
        )


@attrs.define
class Paired:
    """Per round and side: proxy CPU per request (µs), whole process and event loop."""

    total: dict[str, list[float]] = attrs.field(factory=lambda: {s: [] for s in SIDES})
    loop: dict[str, list[float]] = attrs.field(factory=lambda: {s: [] for s in SIDES})
    errors: int = 0

    def diffs(self, kind: str = "total") -> list[float]:
        values = getattr(self, kind)
        return [a - b for a, b in zip(values["on"], values["off"], strict=True)]

    def cost_us(self, kind: str = "total") -> float:
        diffs = self.diffs(kind)
        return statistics.median(diffs) if diffs else math.nan

    @property
    def base_us(self) -> float:
        return statistics.median(self.total["off"]) if self.total["off"] else math.nan


Sides = dict[str, tuple[procs.Child, Target]]


async def _round(
    sides: Sides, count: int, conc: int, first: str = "on"
) -> dict[str, tuple[float, float, int]]:
    """Both proxies loaded at once; per side: CPU µs per request (whole process, event
    loop's thread) and the errors."""
    before = {}
    for child, _ in sides.values():
        child.check_alive()
        before[child.pid] = procs.cpu_seconds(child.pid), procs.thread_cpu_seconds(child.pid)
    results = {}

    async def load(name: str) -> None:
        target = sides[name][1]
        results[name] = await run_load(
            target, count=count, concurrency=conc, check=small_ok, time_limit_s=90
        )

    async with trio.open_nursery() as nursery:
        for name in reversed(sides) if first == "off" else sides:
            nursery.start_soon(load, name)
    out = {}
    for name, (child, _) in sides.items():
        total0, threads0 = before[child.pid]
        threads1 = procs.thread_cpu_seconds(child.pid)
        loop_s = threads1.get(child.pid, 0.0) - threads0[child.pid]
        if threads0.keys() <= threads1.keys():  # nanoseconds, when no thread ended meanwhile
            total_s = sum(cpu - threads0.get(tid, 0.0) for tid, cpu in threads1.items())
        else:
            total_s = procs.cpu_seconds(child.pid) - total0
        per_request = 1e6 / results[name].ok if results[name].ok else math.nan
        out[name] = (total_s * per_request, loop_s * per_request, results[name].error_count)
    return out


async def paired_rounds(plan: LedgerPlan, sides: Sides) -> Paired:
    paired = Paired()
    await _round(sides, plan.warmup, plan.concurrency)
    for n in range(plan.rounds):
        seen = await _round(sides, plan.per_round, plan.concurrency, SIDES[n % 2])
        for name in SIDES:
            total_us, loop_us, errors = seen[name]
            paired.total[name].append(total_us)
            paired.loop[name].append(loop_us)
            paired.errors += errors
    return paired


def measure(
    plan: LedgerPlan,
    workdir: Path,
    sim_base: str,
    extra: tuple[str, ...],
    requests_for: Callable[[int], list[bytes]],
    ready: Callable[[procs.Child, int], Awaitable[None]],
    *,
    claude_base: str | None = None,
    tree: Path = procs.ROOT,
) -> Paired:
    """Start the ledger-on and ledger-off proxies, run the paired rounds, stop them.

    ``extra``: the run's --set lines (a ``ledger`` line is replaced); ``requests_for(port)``:
    the small requests as sent to that port; ``ready``: waits until a proxy answers;
    ``claude_base``: where the proxies send Claude requests (the fast fake upstream);
    ``tree``: the checkout whose trio_pool runs.
    """
    kept = tuple(line for line in extra if line.split("=")[0].strip() != "ledger")
    sides: Sides = {}
    try:
        for name in SIDES:
            port = procs.free_port()
            setting = f"ledger = {'true' if name == 'on' else 'false'}"
            child = procs.start_proxy(
                workdir,
                port,
                sim_base,
                claude_base=claude_base,
                extra=(*kept, setting),
                tree=tree,
                name=f"proxy-ledger-{name}",
            )
            sides[name] = (child, Target(name, HOST, port, requests_for(port)))
            trio.run(ready, child, port)
        return trio.run(paired_rounds, plan, sides)
    finally:
        for child, _ in sides.values():
            child.stop()


@attrs.frozen
class CodeCost:
    """CPU (µs) per request spent in the ledger's code, in this process."""

    request_path_us: float  # model, key hash, tally, row, record: on the event loop
    flush_us: float  # the batched writes: statements built, the hop, the worker thread


async def code_cost(rows: int, body: bytes, path: str) -> CodeCost:
    """The ledger's code on ``rows`` requests like the benchmark's, timed per thread."""
    request_s = flush_s = 0.0
    with tempfile.TemporaryDirectory(prefix="trio-pool-ledger-") as tmp:
        store = await StateStore.open(Path(tmp))
        ledger = Ledger(retention_days=90.0)
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


def share(cost_us: float, base_us: float) -> tuple[float, str]:
    pct = cost_us / base_us * 100 if base_us else math.nan
    return pct, "PASS" if pct < TARGET_PCT else "MISS"


def summary(plan: LedgerPlan, paired: Paired, code: CodeCost) -> list[str]:
    """The lines the benchmark prints; the first is issue 7's yardstick."""
    base, cost = paired.base_us, paired.cost_us()
    pct, status = share(cost, base)
    diffs = sorted(paired.diffs())
    code_us = code.request_path_us + code.flush_us
    return [
        f"ledger cost: {cost:+.0f} µs/request = {pct:+.1f}% of proxy CPU "
        f"(target < {TARGET_PCT:g}%) {status}",
        f"  {plan.rounds} rounds of {plan.per_round} small requests (c={plan.concurrency}) to a "
        f"ledger-on and a ledger-off proxy at once; median of the paired differences "
        f"(spread {diffs[0]:+.0f} .. {diffs[-1]:+.0f} µs)",
        f"  event loop {paired.cost_us('loop'):+.0f} µs, other threads (the ledger's writes) "
        f"{cost - paired.cost_us('loop'):+.0f} µs; ledger off: {base:.0f} µs/request",
        f"ledger code, timed in-process: {code_us:.1f} µs/request = "
        f"{share(code_us, base)[0]:.1f}% (request path {code.request_path_us:.1f} µs, "
        f"batched writes {code.flush_us:.1f} µs)",
    ]


def as_json(paired: Paired, code: CodeCost) -> dict[str, Any]:
    def rounded(values: list[float]) -> list[float]:
        return [round(v, 1) for v in values]

    return {
        "total_us": {name: rounded(v) for name, v in paired.total.items()},
        "event_loop_us": {name: rounded(v) for name, v in paired.loop.items()},
        "cost_us": round(paired.cost_us(), 1),
        "base_us": round(paired.base_us, 1),
        "errors": paired.errors,
        "code_request_path_us": round(code.request_path_us, 2),
        "code_flush_us": round(code.flush_us, 2),
    }


def metrics(paired: Paired, code: CodeCost) -> list[Metric]:
    pct, _ = share(paired.cost_us(), paired.base_us)
    return [
        Metric("ledger CPU per small request (on - off)", "µs", None, paired.cost_us()),
        Metric("  as a share of proxy CPU", "%", None, pct, f"< {TARGET_PCT:g}", TARGET_PCT),
        Metric(
            "ledger code CPU per request (in-process)",
            "µs",
            None,
            code.request_path_us + code.flush_us,
        ),
    ]
