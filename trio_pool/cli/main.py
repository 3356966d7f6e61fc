"""The command line: argparse, subcommands and exit codes. Each family of commands is a
module of this package (serve, accounts, setup, users, state, service); this one builds the parser
and turns errors into one line plus a hint.

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or bad config. Tracebacks only with --debug.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from trio_pool import __version__
from trio_pool.cli import accounts, serve, service, setup, state, users
from trio_pool.errors import ConfigError, TrioPoolError

# In the order `trio-pool --help` lists them.
FAMILIES = (serve, accounts, setup, users, state, service)


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

    for family in FAMILIES:
        family.add_commands(sub)
    return parser


def _subparser(common: argparse.ArgumentParser) -> type[argparse.ArgumentParser]:
    class SubParser(argparse.ArgumentParser):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(parents=[common], **kwargs)

    return SubParser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    command = args.command or "serve"
    if args.command is None:
        args = parser.parse_args(["serve", *(argv or sys.argv[1:])])
    commands: dict[str, Callable[[argparse.Namespace], int]] = {}
    for family in FAMILIES:
        commands.update(family.COMMANDS)
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
