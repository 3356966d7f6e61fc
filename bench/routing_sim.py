"""``python -m bench.routing_sim``: trio-pool's router against round-robin and sticky-until-fail.

The same seeded workload (bench/routing_workload.py) runs three ways in virtual time over the
simulated Claude accounts (bench/routing_engine.py); the table compares client-visible 429s,
the pooled capacity used before the first one, conversation switches and refresh calls, and
bench/results/routing.json keeps every number.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from bench.routing_baselines import RoundRobin, Router, StickyUntilFail
from bench.routing_engine import run
from bench.routing_metrics import Metrics
from bench.routing_workload import (
    Workload,
    model_window_workload,
    overload_workload,
    tiny_workload,
)
from trio_pool.accounts.pool import Pool
from trio_pool.config import RoutingConfig

RESULTS = Path(__file__).resolve().parent / "results" / "routing.json"
SHARE_TARGET = 0.95
SWITCH_TARGET = 2.0


def trio_pool_router(names: list[str]) -> Router:
    pool = Pool(RoutingConfig())
    for name in names:
        pool.set_account(name, "claude")
    return pool


ROUTERS: dict[str, Callable[[list[str]], Router]] = {
    "trio-pool": trio_pool_router,
    "round-robin": RoundRobin.of,
    "sticky-until-fail": StickyUntilFail.of,
}


def run_all(workload: Workload) -> dict[str, Metrics]:
    """The workload once per router, each on fresh accounts."""
    return {label: run(workload, make, label) for label, make in ROUTERS.items()}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _per_account(counts: dict[str, int]) -> str:
    return " ".join(str(counts[n]) for n in sorted(counts))


def rows(results: dict[str, Metrics]) -> list[tuple[str, list[str]]]:
    docs = {label: m.as_json() for label, m in results.items()}

    def row(name: str, cell: Callable[[dict[str, Any]], str]) -> tuple[str, list[str]]:
        return name, [cell(d) for d in docs.values()]

    return [
        row("client 429s while an account had headroom", lambda d: str(d["client_429s_with_headroom"])),
        row("client 429s while an account had quota left", lambda d: str(d["client_429s_with_quota_left"])),
        row("client 429s (all)", lambda d: str(d["client_429s"])),
        row("upstream 429s (hidden by failover)", lambda d: str(d["upstream_429s"])),
        row("pooled capacity used before 1st client 429", lambda d: _pct(d["share_of_capacity_used_before_first_429"])),
        row("first client 429 after (h)", lambda d: str(d["first_client_429_after_h"])),
        row("turns served / demanded", lambda d: f"{d['served_turns']}/{d['demand_turns']}"),
        row("unforced switches / 100 turns", lambda d: f"{d['unforced_switches_per_100_turns']:.2f}"),
        row("worst conversation, unforced / 100", lambda d: f"{d['worst_conversation_unforced_per_100']:.1f}"),
        row("conversations over 2 unforced / 100", lambda d: str(d["conversations_over_2_unforced_per_100"])),
        row("forced switches / 100 turns", lambda d: f"{d['forced_switches_per_100_turns']:.2f}"),
        row("switches after >1 h idle / 100 turns", lambda d: f"{d['switches_after_idle_per_100_turns']:.2f}"),
        row("refresh calls per account", lambda d: _per_account(d["refresh_calls"])),
        row("refresh calls per rotation", lambda d: _ratio(d["refresh_calls"], d["rotations"])),
        row("weekly units lost at reset", lambda d: f"{d['weekly_units_lost_at_reset']:.0f}"),
        row("units served per account", lambda d: " ".join(f"{v:.0f}" for _, v in sorted(d["units_by_account"].items()))),
    ]  # fmt: skip


def _ratio(calls: dict[str, int], rotations: dict[str, int]) -> str:
    total = sum(rotations.values())
    return "-" if total == 0 else f"{sum(calls.values()) / total:.2f}"


def table(results: dict[str, Metrics]) -> str:
    labels = list(results)
    body = rows(results)
    first = max(len(name) for name, _ in body)
    widths = [
        max(len(label), *(len(cells[i]) for _, cells in body)) for i, label in enumerate(labels)
    ]
    lines = ["  ".join([" " * first, *(lb.rjust(w) for lb, w in zip(labels, widths, strict=True))])]
    for name, cells in body:
        lines.append(
            "  ".join(
                [name.ljust(first), *(c.rjust(w) for c, w in zip(cells, widths, strict=True))]
            )
        )
    return "\n".join(lines)  # fmt: skip


def scenarios(seed: int, *, tiny: bool = False) -> dict[str, Workload]:
    """ "steady": demand close to what the pool serves; "overload": more than it can serve;
    "models": Opus and Sonnet conversations over accounts whose weekly Opus limit runs out
    first (a model window must stop Opus only)."""
    if tiny:
        return {"tiny": tiny_workload(seed)}
    return {
        "steady": Workload(seed=seed),
        "overload": overload_workload(seed),
        "models": model_window_workload(seed),
    }


def verdicts(runs: dict[str, dict[str, Metrics]]) -> dict[str, bool]:
    """trio-pool's router against the issue's targets, over every scenario."""
    ours = [results["trio-pool"] for results in runs.values()]
    shares = [m.share_before_first_429 for m in ours if m.share_before_first_429 is not None]
    return {
        "no client 429 while an account has headroom": all(
            m.client_429s_with_headroom == 0 for m in ours
        ),
        ">= 95% of pooled capacity used before the first client 429": all(
            share >= SHARE_TARGET for share in shares
        ),
        "<= 2 unforced switches per 100 turns": all(
            m.switches_per_100("unforced") <= SWITCH_TARGET for m in ours
        ),
        "exactly one refresh call per rotation": all(
            m.refresh_calls == m.rotations and m.reused_refresh_tokens == 0 for m in ours
        ),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing_sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--conversations", type=int, default=None, help="override every scenario")
    parser.add_argument("--tiny", action="store_true", help="the small workload of the tests")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    workloads = scenarios(args.seed, tiny=args.tiny)
    if args.conversations is not None:
        workloads = {
            name: attrs.evolve(w, conversations=args.conversations) for name, w in workloads.items()
        }
    started = time.perf_counter()
    runs = {name: run_all(w) for name, w in workloads.items()}
    elapsed = time.perf_counter() - started
    for name, results in runs.items():
        w = workloads[name]
        print(f"== {name}: {w.conversations} conversations in {w.bursts} bursts every "
              f"{w.burst_every_h:g} h, {len(w.accounts)} accounts, seed {w.seed}")  # fmt: skip
        print("per-account rows list " + ", ".join(sorted(s.name for s in w.accounts)))
        print(table(results))
        print()
    checks = verdicts(runs)
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    turns = sum(m.demand_turns for results in runs.values() for m in results.values())
    print(f"\n{turns} turns simulated in {elapsed:.1f} s")
    document = {
        "elapsed_s": round(elapsed, 2),
        "targets": checks,
        "scenarios": {
            name: {
                "workload": attrs.asdict(workloads[name]),
                "routers": {label: m.as_json() for label, m in results.items()},
            }
            for name, results in runs.items()
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
