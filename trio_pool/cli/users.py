"""`trio-pool users ...` and `trio-pool password`: shared mode's people, keys and admin."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from trio_pool.cli.args import add_config_args, config_from_args, emit, note


def add_commands(sub: Any) -> None:
    users = sub.add_parser("users", help="people who share this pool, and their pool keys")
    verbs = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        add_config_args(parser)
        return parser

    verb("list", "every user, their keys (ids) and limits").add_argument(
        "--json", action="store_true"
    )
    for name, text in (("add", "add a user and print their key"), ("limits", "set limits")):
        parser = verb(name, text)
        parser.add_argument("name")
        parser.add_argument("--rpm", type=int, help="requests per minute")
        parser.add_argument("--streams", type=int, help="requests at once")
        parser.add_argument("--share", type=float, help="percent of the pool's window quota")
    verb("remove", "remove a user and their keys").add_argument("name")
    verb("key", "issue another key for a user").add_argument("name")
    verb("revoke", "revoke a key by its id (see users list)").add_argument("key_id")
    password = sub.add_parser("password", help="set the dashboard's admin password")
    add_config_args(password)
    password.add_argument(
        "--stdin", action="store_true", help="read the password from standard input"
    )


def _cmd_users(args: argparse.Namespace) -> int:
    from trio_pool.auth.manage import render_users, run_with_directory, user_documents
    from trio_pool.auth.model import UserLimits

    config = config_from_args(args)
    verb = args.users_command
    if verb == "list":
        documents = run_with_directory(config, user_documents)
        emit(args, {"users": documents}, render_users(documents))
        return 0
    if verb in ("add", "limits"):
        limits = UserLimits(args.rpm, args.streams, args.share)
        if verb == "limits":
            run_with_directory(config, lambda d: d.set_limits(args.name, limits))
            print(f"limits of {args.name} set")
            return 0
        user, key = run_with_directory(config, lambda d: d.add_user(args.name, limits))
        print(f"added {user.name}; their pool key (shown only now):\n  {key}")
        # Their machine is not this one: a wildcard listen has no name we could print.
        wildcard = config.listen_host in ("0.0.0.0", "::")
        server = f"http://<this-host>:{config.listen_port}" if wildcard else config.local_url
        note(
            "next, on their machine: trio-pool setup claude|codex|gemini --write "
            f"--server {server} --key {key}"
        )
        return 0
    if verb == "remove":
        run_with_directory(config, lambda d: d.remove_user(args.name))
        print(f"removed {args.name} and their keys")
    elif verb == "key":
        record, key = run_with_directory(config, lambda d: d.issue_key(args.name))
        print(f"new key {record.id} for {args.name} (shown only now):\n  {key}")
    else:
        run_with_directory(config, lambda d: d.revoke_key(args.key_id))
        print(f"revoked key {args.key_id}")
    return 0


def _cmd_password(args: argparse.Namespace) -> int:
    import getpass

    from trio_pool.auth.manage import run_with_directory

    config = config_from_args(args)
    if args.stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("new admin password: ")
        if getpass.getpass("again: ") != password:
            print("trio-pool: the two passwords differ; nothing changed", file=sys.stderr)
            return 2
    run_with_directory(config, lambda d: d.set_password(password))
    print("admin password set; sign in on the dashboard as admin")
    return 0


COMMANDS = {"users": _cmd_users, "password": _cmd_password}
