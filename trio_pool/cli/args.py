"""What every command shares: the config options, loading the config, and printing."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from trio_pool.config import Config, find_config_file, load_config

PROVIDER_CHOICES = ("codex", "claude", "gemini")
ADMIN_TOKEN_ENV = "TRIO_POOL_ADMIN_TOKEN"


def add_config_args(parser: argparse.ArgumentParser) -> None:
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


def config_from_args(args: argparse.Namespace) -> Config:
    overrides: dict[str, Any] = {}
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    # Directories given on the command line are relative to where the command runs.
    if getattr(args, "pool_dir", None):
        overrides["pool_dir"] = str(Path(args.pool_dir).resolve())
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = str(Path(args.data_dir).resolve())
    return load_config(find_config_file(getattr(args, "config", None)), overrides)


def emit(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, indent=2) if args.json else text)


def note(text: str) -> None:
    print(text, file=sys.stderr)
