"""One benchmark run: start the simulator and the proxy, run each workload both ways, report.

Every workload sends the same Claude ``/v1/messages`` requests twice: DIRECT to the simulator
(with an account's real OAuth headers, as the proxy would send them) and THROUGH the proxy.
Each is warmed up first; CPU and memory are read from /proc for the proxy's process only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from bench import ledger_cost, procs, report, websocket
from bench.client import Connection, ConnectionLost, encode_request
from bench.load import LoadResult, Target
from bench.workloads import HOST, Plan, Workloads, message_body, message_requests

LEDGER_RESULTS = report.RESULTS.parent / "ledger.json"


def claude_tokens(pool_dir: Path) -> list[str]:
    """The access tokens the simulator wrote into the pool (what the proxy will send)."""
    files = sorted((pool_dir / "claude").glob("*.json"))
    return [json.loads(f.read_text())["claudeAiOauth"]["accessToken"] for f in files]


async def wait_until_answers(child: procs.Child, port: int, raw: bytes, timeout_s: float) -> None:
    with trio.fail_after(timeout_s):
        while True:
            child.check_alive()
            conn = Connection(HOST, port)
            try:
                if (await conn.request(raw)).status == 200:
                    return
            except (OSError, ConnectionLost):
                pass
            finally:
                await conn.aclose()
            await trio.sleep(0.05)


def _targets(sim_port: int, proxy_port: int, tokens: list[str], stream: bool) -> list[Target]:
    return [
        Target("direct", HOST, sim_port, message_requests(sim_port, tokens, stream=stream)),
        Target("proxy", HOST, proxy_port, message_requests(proxy_port, ["pool"], stream=stream)),
    ]


def _per(cpu_s: float, load: LoadResult, scale: float) -> float:
    return cpu_s / load.ok * scale if load.ok else math.nan


def build_metrics(w: Workloads) -> list[report.Metric]:
    m = report.Metric
    small_d, small_p = w.loads["small direct"], w.loads["small proxy"]
    st_d, st_p = w.loads["stream direct"], w.loads["stream proxy"]
    tt_d, tt_p = w.loads["ttfb direct"], w.loads["ttfb proxy"]
    soak = [w.loads["soak first"], w.loads["soak rest"]]
    after = w.loads["small after streams proxy"]
    soak_ok = sum(r.ok for r in soak)
    p50 = (tt_d.ttfb_ms(0.5), tt_p.ttfb_ms(0.5))
    p99 = (tt_d.ttfb_ms(0.99), tt_p.ttfb_ms(0.99))
    growth = w.rss["after_all"] - w.rss["after_first"]
    errors = sum(r.error_count for r in w.loads.values())
    pooled = sum(seen["connections"] for label, seen in w.upstream.items() if "direct" not in label)
    return [
        m("small requests/s (c=16)", "req/s", small_d.rate, small_p.rate),
        m("200x200B streams/s (c=64)", "streams/s", st_d.rate, st_p.rate),
        m("TTFB p50 (c=1)", "ms", p50[0], p50[1]),
        m("TTFB p99 (c=1)", "ms", p99[0], p99[1]),
        m("added TTFB p50", "ms", None, p50[1] - p50[0], "<= 0.5", 0.5),
        m("added TTFB p99", "ms", None, p99[1] - p99[0]),
        m(
            "proxy CPU per small request",
            "µs",
            None,
            _per(w.cpu["small proxy"], small_p, 1e6),
            "<= 300",
            300,
        ),
        m(
            "proxy CPU per stream (64 conns pooled)",
            "ms",
            None,
            _per(w.cpu["stream proxy"], st_p, 1e3),
            "<= 2",
            2,
        ),
        m(
            "proxy CPU per small request (soak)",
            "µs",
            None,
            w.cpu["soak"] / soak_ok * 1e6 if soak_ok else math.nan,
        ),
        m(
            "  same, 64 upstream conns pooled",
            "µs",
            None,
            _per(w.cpu["small after streams proxy"], after, 1e6),
        ),
        m("upstream connections the proxy opened", "count", None, float(pooled)),
        m(
            "simulator CPU per small request",
            "µs",
            _per(w.sim_cpu["small direct"], small_d, 1e6),
            _per(w.sim_cpu["small proxy"], small_p, 1e6),
        ),
        m(
            "simulator CPU per stream",
            "ms",
            _per(w.sim_cpu["stream direct"], st_d, 1e3),
            _per(w.sim_cpu["stream proxy"], st_p, 1e3),
        ),
        m("proxy RSS idle", "MiB", None, w.rss["idle"], "<= 40", 40),
        m(f"proxy RSS after {soak[0].planned:,} requests", "MiB", None, w.rss["after_first"]),
        m(
            f"proxy RSS after {soak[0].planned + soak[1].planned:,} requests",
            "MiB",
            None,
            w.rss["after_all"],
        ),
        m(
            "proxy RSS growth over the soak",
            "MiB",
            None,
            growth,
            f"<= {w.plan.growth_limit_mb}",
            w.plan.growth_limit_mb,
        ),
        m("proxy peak RSS (VmHWM)", "MiB", None, w.rss["peak"]),
        m("failed requests (all runs)", "count", None, float(errors), "0", 0),
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a tenth of every count (smoke run)")
    parser.add_argument("--accounts", type=int, default=3, help="simulated accounts per provider")
    parser.add_argument(
        "--profile", action="store_true", help="run the proxy under cProfile and print its hotspots"
    )
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the JSON ({report.RESULTS}; with --ledger-only {LEDGER_RESULTS})",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='a top-level config.toml line for the proxy, e.g. --set "ledger = false"',
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--ledger-only",
        action="store_true",
        help="only the ledger's on/off rounds (bench/ledger_cost.py)",
    )
    which.add_argument("--no-ledger", action="store_true", help="skip the ledger's on/off rounds")
    return parser.parse_args(argv)


async def proxy_ready(child: procs.Child, port: int) -> None:
    await wait_until_answers(
        child, port, encode_request("GET", "/healthz", f"{HOST}:{port}", []), 30.0
    )


def proxy_runs(
    args: argparse.Namespace, plan: Plan, workdir: Path, sim: procs.Child, sim_port: int
) -> tuple[Workloads, list[report.Metric], dict[str, Any], str]:
    """The direct-versus-proxy workloads and the WebSocket figures, on one proxy."""
    profile_to = workdir / "proxy.prof" if args.profile else None
    proxy_port = procs.free_port()
    sim_base = f"http://{HOST}:{sim_port}"
    proxy = procs.start_proxy(
        workdir, proxy_port, sim_base, profile_to=profile_to, extra=tuple(args.set)
    )
    try:
        trio.run(proxy_ready, proxy, proxy_port)
        tokens = claude_tokens(workdir / "pool")
        workloads = Workloads(plan, sim, proxy, sim_port, proxy_port)
        workloads.small = _targets(sim_port, proxy_port, tokens, stream=False)
        workloads.streaming = _targets(sim_port, proxy_port, tokens, stream=True)
        trio.run(workloads.run_all)
        ws_plan = websocket.WsPlan().scaled(0.1) if args.quick else websocket.WsPlan()
        ws_metrics, ws_runs = trio.run(
            websocket.measure, ws_plan, sim, proxy, sim_port, proxy_port, workdir / "pool"
        )
        proxy_log = proxy.log_tail(15)
    finally:
        proxy.stop()
    if profile_to is not None:
        report.print_profile(profile_to, 30)
    return workloads, ws_metrics, ws_runs, proxy_log


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    output = args.output or (LEDGER_RESULTS if args.ledger_only else report.RESULTS)
    plan = Plan().scaled(0.1) if args.quick else Plan()
    ledger_plan = ledger_cost.LedgerPlan()
    ledger_plan = ledger_plan.scaled(0.25) if args.quick else ledger_plan
    workloads: Workloads | None = None
    paired: ledger_cost.Paired | None = None
    ws_metrics: list[report.Metric] = []
    ws_runs: dict[str, Any] = {}
    proxy_log = ""
    with tempfile.TemporaryDirectory(prefix="trio-pool-bench-") as tmp:
        workdir = Path(tmp)
        sim_port = procs.free_port()
        sim = procs.start_simulator(workdir, sim_port, args.accounts)
        try:
            control = encode_request("POST", "/bench/config", f"{HOST}:{sim_port}", [], b"{}")
            trio.run(wait_until_answers, sim, sim_port, control, 30.0)
            if not args.ledger_only:
                workloads, ws_metrics, ws_runs, proxy_log = proxy_runs(
                    args, plan, workdir, sim, sim_port
                )
            if not args.no_ledger:
                paired = ledger_cost.measure(
                    ledger_plan,
                    workdir,
                    f"http://{HOST}:{sim_port}",
                    tuple(args.set),
                    partial(message_requests, tokens=["pool"], stream=False),
                    proxy_ready,
                )
        finally:
            sim.stop()
    metrics = [] if workloads is None else build_metrics(workloads)
    metrics += ws_metrics
    document: dict[str, Any] = {
        "finished_at": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "profiled": bool(args.profile),
        "plan": attrs.asdict(plan),
    }
    ledger_lines: list[str] = []
    if paired is not None:
        body = json.dumps(message_body(stream=False), separators=(",", ":")).encode()
        code = trio.run(ledger_cost.code_cost, ledger_plan.code_rows, body, "/v1/messages")
        metrics += ledger_cost.metrics(paired, code)
        ledger_lines = ledger_cost.summary(ledger_plan, paired, code)
        document["ledger"] = ledger_cost.as_json(paired, code)
    print(f"\ntrio-pool benchmark ({os.cpu_count()} CPUs, Python {platform.python_version()})")
    print(report.table(metrics))
    if ledger_lines:
        print("\n" + "\n".join(ledger_lines))
    errors = 0 if paired is None else paired.errors
    if workloads is not None:
        print("\nruns (warm-ups included; every non-200 or malformed reply is an error):")
        print(report.counts(workloads.loads, workloads.upstream))
        errors += sum(r.error_count for r in workloads.loads.values())
        document |= {
            "runs": {label: report.load_json(r) for label, r in workloads.loads.items()},
            "rss_mib": workloads.rss,
            "simulator_saw": workloads.upstream,
            "websocket_runs": ws_runs,
        }
    if proxy_log:
        print(f"\nproxy log (last lines, log_level=warning):\n{proxy_log}")
    document["metrics"] = [metric.as_json() for metric in metrics]
    print(f"\nwritten to {report.write_json(document, output)}")
    return 1 if errors else 0
