"""One benchmark run: the speed comparison, the WebSocket figures, the ledger's cost.

1. The simulator (``bench.sim``) mints the pool (two accounts per provider) and serves the
   token endpoints, Codex and Gemini. The fast fake upstream serves Claude's Messages API.
2. The comparison (``bench.compare``): direct, the bare relay, claude-code-router 2.0.0 and
   trio-pool under the same wrk load, each target's CPU and memory read from /proc.
3. WebSocket turns and frame latency through the same trio-pool (``bench.websocket``).
4. The ledger's cost: two more proxies, ledger on and off, loaded at once
   (``bench.ledger_cost``).

``--profile small|stream`` instead records trio-pool under one workload with py-spy
(``bench.profile``). Results go to ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import subprocess
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import trio

from bench import compare_report, ledger_cost, procs, report, websocket
from bench.client import encode_request
from bench.compare import POOL, SMALL, STREAM, ComparePlan, Comparison
from bench.targets import open_targets, proxy_ready, wait_accepting, wait_until_answers
from bench.workloads import HOST, body_bytes, message_requests

LEDGER_RESULTS = report.RESULTS.parent / "ledger.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke run)")
    parser.add_argument("--accounts", type=int, default=2, help="simulated accounts per provider")
    parser.add_argument(
        "--profile",
        choices=(SMALL, STREAM),
        help="record trio-pool under this workload with py-spy and print its top frames",
    )
    parser.add_argument("--no-ccr", action="store_true", help="leave claude-code-router out")
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
    parser.add_argument(
        "--tree",
        type=Path,
        default=procs.ROOT,
        help="measure the trio_pool of this checkout (default: this one), e.g. /work/main",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch folder (configs, logs) and print it"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--ledger-only",
        action="store_true",
        help="only the ledger's on/off rounds (bench/ledger_cost.py)",
    )
    which.add_argument("--no-ledger", action="store_true", help="skip the ledger's on/off rounds")
    return parser.parse_args(argv)


def comparison_runs(
    args: argparse.Namespace,
    workdir: Path,
    sim: procs.Child,
    sim_port: int,
    upstream: procs.Child,
    upstream_port: int,
) -> tuple[Comparison, list[report.Metric], dict[str, Any], str]:
    """The four-target comparison, then the WebSocket figures on the same trio-pool."""
    plan = ComparePlan().quick() if args.quick else ComparePlan()
    opened = open_targets(
        workdir,
        sim_port,
        upstream,
        upstream_port,
        tuple(args.set),
        with_ccr=not args.no_ccr,
        tree=args.tree.resolve(),
    )
    with opened as (servers, skipped, on_codex):
        comparison = Comparison(
            plan, servers, upstream, upstream_port, skipped=skipped, on_codex=on_codex
        )
        comparison.run_all()
        proxy = next(s for s in servers if s.name == POOL)
        ws_plan = websocket.WsPlan().scaled(0.1) if args.quick else websocket.WsPlan()
        try:
            ws_metrics, ws_runs = trio.run(
                websocket.measure, ws_plan, sim, proxy.child, sim_port, proxy.port, workdir / "pool"
            )
        except Exception:
            proxy.child.check_alive()  # a proxy that died explains the failure best
            raise
        proxy_log = proxy.child.log_tail(10)
    return comparison, ws_metrics, ws_runs, proxy_log


def describe_tree(tree: Path) -> str:
    """The measured checkout, as ``path (branch @ commit)`` when git can tell."""
    git = ["git", "-C", str(tree)]
    try:
        branch = subprocess.run(
            [*git, "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(tree)
    return f"{tree} ({branch} @ {commit})"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        from bench import hotspots  # py-spy is only needed here

        return hotspots.main(
            args.profile, quick=args.quick, accounts=args.accounts, tree=args.tree.resolve()
        )
    output = args.output or (LEDGER_RESULTS if args.ledger_only else report.RESULTS)
    # Other work on this box skews every figure; the ratios (same run) much less so.
    load_before = os.getloadavg()
    ledger_plan = ledger_cost.LedgerPlan()
    ledger_plan = ledger_plan.scaled(0.25) if args.quick else ledger_plan
    comparison: Comparison | None = None
    paired: ledger_cost.Paired | None = None
    ws_metrics: list[report.Metric] = []
    ws_runs: dict[str, Any] = {}
    proxy_log = ""
    scratch: contextlib.AbstractContextManager[str] = (
        contextlib.nullcontext(tempfile.mkdtemp(prefix="trio-pool-bench-"))
        if args.keep
        else tempfile.TemporaryDirectory(prefix="trio-pool-bench-")
    )
    with scratch as tmp:
        workdir = Path(tmp)
        if args.keep:
            print(f"scratch folder (kept): {workdir}")
        sim_port = procs.free_port()
        sim = procs.start_simulator(workdir, sim_port, args.accounts)
        children = [sim]
        try:
            control = encode_request("POST", "/bench/config", f"{HOST}:{sim_port}", [], b"{}")
            trio.run(wait_until_answers, sim, sim_port, control, 30.0)
            # The simulator has written the pool: the fake upstream reads its Claude tokens.
            upstream_port = procs.free_port()
            upstream = procs.start_upstream(workdir, upstream_port)
            children.append(upstream)
            wait_accepting(upstream, upstream_port, 30)
            if not args.ledger_only:
                comparison, ws_metrics, ws_runs, proxy_log = comparison_runs(
                    args, workdir, sim, sim_port, upstream, upstream_port
                )
            if not args.no_ledger:
                paired = ledger_cost.measure(
                    ledger_plan,
                    workdir,
                    f"http://{HOST}:{sim_port}",
                    tuple(args.set),
                    partial(message_requests, tokens=["pool"], stream=False),
                    proxy_ready,
                    claude_base=f"http://{HOST}:{upstream_port}",
                    tree=args.tree.resolve(),
                )
        finally:
            for child in reversed(children):
                child.stop()
    tree = describe_tree(args.tree.resolve())
    document: dict[str, Any] = {
        "finished_at": datetime.now(UTC).isoformat(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "tree": tree,
        "load_average_before": load_before,
        "quick": bool(args.quick),
    }
    print(f"\ntrio-pool benchmark ({os.cpu_count()} CPUs, Python {platform.python_version()})")
    print(f"measured: {tree}")
    print(f"load average before the run: {', '.join(f'{x:.2f}' for x in load_before)}")
    metrics = list(ws_metrics)
    ledger_pct: float | None = None
    errors = 0
    code: ledger_cost.CodeCost | None = None
    if paired is not None:
        code = trio.run(
            ledger_cost.code_cost, ledger_plan.code_rows, body_bytes(stream=False), "/v1/messages"
        )
        metrics += ledger_cost.metrics(paired, code)
        ledger_pct = ledger_cost.share(paired.cost_us(), paired.base_us)[0]
        document["ledger"] = ledger_cost.as_json(paired, code)
        errors += paired.errors
    if comparison is not None:
        checks = compare_report.checks(comparison, ledger_pct)
        print("\n" + compare_report.table(comparison))
        print("\n".join(["", *compare_report.summary_lines(comparison)]))
        print("\n" + compare_report.checks_table(checks))
        document["comparison"] = compare_report.as_json(comparison, checks)
        errors += comparison.all_errors()
    if metrics:
        print("\nWebSocket and ledger (direct = to the simulator, proxy = through trio-pool):")
        print(report.table(metrics))
    if paired is not None and code is not None:
        print("\n" + "\n".join(ledger_cost.summary(ledger_plan, paired, code)))
    if proxy_log:
        print(f"\ntrio-pool log (last lines, log_level=info):\n{proxy_log}")
    document["metrics"] = [metric.as_json() for metric in metrics]
    document["websocket_runs"] = ws_runs
    print(f"\nwritten to {report.write_json(document, output)}")
    return 1 if errors else 0
