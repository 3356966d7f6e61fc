"""The command line: argparse, subcommands and exit codes. The only module that prints.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config. Errors are one line plus a
hint; tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from trio_pool import __version__
from trio_pool.config import Config, find_config_file, load_config, parse_listen
from trio_pool.errors import ConfigError, TrioPoolError
from trio_pool.logs import setup_logging

log = logging.getLogger(__name__)


def _add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="F", help="config file (default: $TRIO_POOL_CONFIG, else ./config.toml)"
    )
    parser.add_argument(
        "--listen", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:8989)"
    )
    parser.add_argument(
        "--pool-dir", metavar="D", help="directory of pool/<provider>/NAME.json logins"
    )
    parser.add_argument("--data-dir", metavar="D", help="directory for state.db")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trio-pool",
        description="Pool Codex CLI, Claude Code and Gemini CLI accounts behind one local address.",
    )
    parser.add_argument("--version", action="version", version=f"trio-pool {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    # --debug is accepted after the command too (`trio-pool serve --debug`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_subparser(common))

    serve = sub.add_parser("serve", help="run the proxy (the default command)")
    _add_config_args(serve)

    demo = sub.add_parser(
        "demo", help="run the proxy against simulated upstreams (no credentials needed)"
    )
    demo.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:8989")

    sub.add_parser("selftest", help="proxy one request per provider through simulated upstreams")

    status = sub.add_parser(
        "status", help="show every account's state and quota (asks the running proxy)"
    )
    _add_config_args(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--watch", action="store_true", help="refresh every 2 seconds")
    return parser


def _subparser(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    class SubParser(argparse.ArgumentParser):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(parents=[common], **kwargs)

    return SubParser


def _config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    # Directories given on the command line are relative to where the command runs.
    if getattr(args, "pool_dir", None):
        overrides["pool_dir"] = str(Path(args.pool_dir).resolve())
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = str(Path(args.data_dir).resolve())
    return load_config(find_config_file(getattr(args, "config", None)), overrides)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or sys.argv[1:])])
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "serve": _cmd_serve,
        "demo": _cmd_demo,
        "selftest": _cmd_selftest,
        "status": _cmd_status,
    }
    # except* so that errors raised inside trio nurseries (which arrive grouped) get the
    # same one-line treatment as plain ones.
    result = 1
    try:
        result = commands[command](args)
    except* ConfigError as group:
        print("trio-pool: bad configuration:", file=sys.stderr)
        for exc in _leaves(group):
            for problem in getattr(exc, "problems", [str(exc)]):
                print(f"  {problem}", file=sys.stderr)
        print("hint: every key is documented in the README's config reference", file=sys.stderr)
        result = 2
    except* (TrioPoolError, OSError) as group:
        if args.debug:
            raise
        for exc in _leaves(group):
            print(f"trio-pool: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
            if getattr(exc, "errno", None) in (98, 48):  # EADDRINUSE on Linux / macOS
                print(
                    "hint: another process listens there; pick another with --listen 127.0.0.1:PORT",
                    file=sys.stderr,
                )
        result = 1
    except* KeyboardInterrupt:
        result = 130
    return result


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves


def _cmd_serve(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
    setup_logging("debug" if args.debug else config.log_level)
    from trio_pool.app import serve_proxy, serve_until_signalled

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            running = await nursery.start(serve_proxy, config)
            log.info("app.started listen=%s pool_dir=%s", running.base_url, config.pool_dir)
            await serve_until_signalled(running)
            running.shutdown.begin(config.shutdown_grace_s)

    trio.run(run)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.debug else "info")
    if not args.debug:
        # The demo's own start-up chatter would bury the instructions it prints.
        for name in ("trio_pool.credentials.registry", "trio_pool.testing"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from trio_pool.demo import run_demo

    parse_listen(args.listen)
    trio.run(run_demo, args.listen, print)
    return 0


def _cmd_selftest(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.debug else "warning")
    from trio_pool.demo import run_selftest

    failures = trio.run(run_selftest, print)
    return 1 if failures else 0


def _cmd_status(args: argparse.Namespace) -> int:
    config = _config_from_args(args)
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
