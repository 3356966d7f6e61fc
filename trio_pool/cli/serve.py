"""`trio-pool serve`, `demo`, `selftest` and `status`: running the proxy, and asking it."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from functools import partial
from pathlib import Path
from typing import Any

import trio

from trio_pool.cli.args import add_config_args, config_from_args
from trio_pool.config import parse_listen
from trio_pool.logs import setup_logging

log = logging.getLogger(__name__)


def add_commands(sub: Any) -> None:
    serve = sub.add_parser("serve", help="run the proxy (the default command)")
    add_config_args(serve)

    demo = sub.add_parser(
        "demo", help="run the proxy against simulated upstreams (no credentials needed)"
    )
    demo.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8989")
    demo.add_argument(
        "--shared",
        action="store_true",
        help="shared mode: a friend code for the dashboard and a pool key for the CLIs",
    )
    demo.add_argument(
        "--sim-script",
        metavar="FILE",
        default=os.environ.get("TRIO_POOL_SIM_SCRIPT") or None,
        help="JSON file of scripted model turns for the simulated upstreams "
        "(default: $TRIO_POOL_SIM_SCRIPT; format in trio_pool/testing/scripts.py)",
    )

    demo.add_argument(
        "--providers",
        metavar="LIST",
        help="only these providers' simulated accounts, comma-separated (e.g. codex: a "
        "Codex-only pool for Claude Code on Codex)",
    )

    sub.add_parser("selftest", help="proxy one request per provider through simulated upstreams")

    status = sub.add_parser(
        "status", help="show every account's state and quota (asks the running proxy)"
    )
    add_config_args(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--watch", action="store_true", help="refresh every 2 seconds")


def _cmd_serve(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    setup_logging("debug" if args.debug else config.log_level)
    from trio_pool.app import serve_proxy, shutdown_signals, wait_for_shutdown_signal

    async def run() -> None:
        with shutdown_signals() as signals:
            async with trio.open_nursery() as nursery:
                running = await nursery.start(serve_proxy, config)
                log.info("app.started listen=%s pool_dir=%s", running.base_url, config.pool_dir)
                await wait_for_shutdown_signal(signals, running)

    from trio_pool.log_batching import lines_flushed_when_idle

    with lines_flushed_when_idle() as instruments:
        trio.run(run, instruments=instruments)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from trio_pool.providers.base import PROVIDERS
    from trio_pool.testing.scripts import TurnScripts, read_script
    from trio_pool.testing.turns import ScriptError

    parse_listen(args.listen)
    script = None
    if args.sim_script:
        try:
            script = read_script(Path(args.sim_script))
            TurnScripts().load(script)  # refuse a bad script before anything starts
        except ScriptError as exc:
            print(f"trio-pool: {exc}", file=sys.stderr)
            return 2
    setup_logging("debug" if args.debug else "info")
    if not args.debug:
        # The demo's own start-up chatter would bury the instructions it prints.
        for name in ("trio_pool.credentials.registry", "trio_pool.testing", "trio_pool.auth"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from trio_pool.demo import run_demo

    providers = None
    if args.providers:
        providers = [p.strip() for p in args.providers.split(",") if p.strip()]
        unknown = sorted(set(providers) - set(PROVIDERS))
        if unknown:
            print(f"trio-pool: --providers: unknown {', '.join(unknown)}", file=sys.stderr)
            return 2
    run = partial(
        run_demo, args.listen, print, shared=args.shared, script=script, providers=providers
    )
    trio.run(run)
    return 0


def _cmd_selftest(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.debug else "warning")
    from trio_pool.demo import run_selftest

    failures = trio.run(run_selftest, print)
    return 1 if failures else 0


def _cmd_status(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from trio_pool.status import fetch_health, render_status

    def once() -> int:
        document = trio.run(fetch_health, config)
        if args.json:
            print(json.dumps(document, indent=2))
        else:
            print(render_status(document, color=sys.stdout.isatty()))
        return 0

    if not args.watch:
        return once()
    import time

    while True:
        if sys.stdout.isatty():
            print("\x1b[2J\x1b[H", end="")
        once()
        time.sleep(2)


COMMANDS = {
    "serve": _cmd_serve,
    "demo": _cmd_demo,
    "selftest": _cmd_selftest,
    "status": _cmd_status,
}
