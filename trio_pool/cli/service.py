"""`trio-pool service install|uninstall|status`: the per-user systemd / launchd service."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_commands(sub: Any) -> None:
    service = sub.add_parser("service", help="run the proxy as a systemd / launchd user service")
    service.add_argument("action", choices=["install", "uninstall", "status"])
    service.add_argument("--json", action="store_true", help="machine-readable status")


def _cmd_service(args: argparse.Namespace) -> int:
    from trio_pool import service

    host = service.current_host()
    if args.action == "status":
        state = service.status(host)
        print(json.dumps(state.as_json(), indent=2) if args.json else state.describe())
        if not state.available:
            print(f"hint: {state.hint}", file=sys.stderr)
        return 0 if state.available else 1
    try:
        lines = service.install(host) if args.action == "install" else service.uninstall(host)
    except service.ServiceError as exc:
        print(f"trio-pool: {exc}\nhint: {exc.hint}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


COMMANDS = {"service": _cmd_service}
