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
from functools import partial
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
    demo.add_argument(
        "--shared",
        action="store_true",
        help="shared mode: a friend code for the dashboard and a pool key for the CLIs",
    )

    sub.add_parser("selftest", help="proxy one request per provider through simulated upstreams")

    status = sub.add_parser(
        "status", help="show every account's state and quota (asks the running proxy)"
    )
    _add_config_args(status)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--watch", action="store_true", help="refresh every 2 seconds")
    _add_accounts_commands(sub)
    _add_users_commands(sub)
    _add_service_command(sub)
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
        "accounts": _cmd_accounts,
        "setup": _cmd_setup,
        "service": _cmd_service,
        "users": _cmd_users,
        "password": _cmd_password,
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
    from trio_pool.app import serve_proxy, shutdown_signals, wait_for_shutdown_signal

    async def run() -> None:
        with shutdown_signals() as signals:
            async with trio.open_nursery() as nursery:
                running = await nursery.start(serve_proxy, config)
                log.info("app.started listen=%s pool_dir=%s", running.base_url, config.pool_dir)
                await wait_for_shutdown_signal(signals, running)

    trio.run(run)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.debug else "info")
    if not args.debug:
        # The demo's own start-up chatter would bury the instructions it prints.
        for name in ("trio_pool.credentials.registry", "trio_pool.testing", "trio_pool.auth"):
            logging.getLogger(name).setLevel(logging.WARNING)
    from trio_pool.demo import run_demo

    parse_listen(args.listen)
    trio.run(partial(run_demo, args.listen, print, shared=args.shared))
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


# -- accounts and setup ----------------------------------------------------------------------

PROVIDER_CHOICES = ("codex", "claude", "gemini")
ADMIN_TOKEN_ENV = "TRIO_POOL_ADMIN_TOKEN"


def _add_accounts_commands(sub: Any) -> None:
    accounts = sub.add_parser("accounts", help="list, add, log in, remove and switch accounts")
    verbs = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        _add_config_args(parser)
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return parser

    verb("list", "every pool account: email, plan, state, token expiry, window use")
    add = verb("import", "take the login a CLI already has into the pool")
    add.add_argument("provider", choices=PROVIDER_CHOICES)
    add.add_argument("--from", dest="source", metavar="PATH", help="a credential file to import")
    add.add_argument("--name", help="account name (default: the account's email)")
    login = verb("login", "log in with the provider's OAuth flow; the login goes into the pool")
    login.add_argument("provider", choices=PROVIDER_CHOICES)
    login.add_argument("--name", help="account name (default: the account's email)")
    login.add_argument(
        "--no-browser",
        action="store_true",
        help="headless: Codex device code, Claude/Gemini code paste",
    )
    login.add_argument("--server", metavar="URL", help="send the login to this remote trio-pool")
    login.add_argument(
        "--admin-token", metavar="T", help=f"the remote's admin_token (default ${ADMIN_TOKEN_ENV})"
    )
    login.add_argument("--timeout", type=float, default=300.0, metavar="S", help=argparse.SUPPRESS)
    for name, text in (
        ("remove", "delete an account's pool file"),
        ("enable", "put an account back into rotation (config.toml)"),
        ("disable", "take an account out of rotation (config.toml)"),
        ("use", "write an account into the CLI's own credential file (backup first)"),
    ):
        verb(name, text).add_argument("name", metavar="NAME")
    refresh = verb("refresh", "refresh access tokens now (no running proxy needed)")
    refresh.add_argument("names", metavar="NAME", nargs="*")
    refresh.add_argument("--all", action="store_true", help="every account")

    setup = sub.add_parser("setup", help="point a CLI at the proxy (prints; --write applies)")
    _add_config_args(setup)
    setup.add_argument("provider", choices=PROVIDER_CHOICES)
    setup.add_argument("--write", action="store_true", help="change the file (backup first)")
    setup.add_argument("--undo", action="store_true", help="restore the file from its backup")
    setup.add_argument(
        "--server",
        "--url",
        dest="url",
        metavar="URL",
        help="the proxy's address (default: from the config's listen, http://127.0.0.1:8989)",
    )
    setup.add_argument(
        "--key", metavar="KEY", help="your pool key (shared pool): no login of your own needed"
    )
    setup.add_argument(
        "--custom-provider",
        action="store_true",
        help="codex: a provider of its own instead of moving the built-in one (sessions made "
        "before are then not offered by `codex resume`)",
    )
    setup.add_argument("--json", action="store_true", help="machine-readable output")


def _emit(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, indent=2) if args.json else text)


def _note(text: str) -> None:
    print(text, file=sys.stderr)


def _cmd_accounts(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.debug else "warning")
    config = _config_from_args(args)
    handlers: dict[str, Callable[[argparse.Namespace, Config], int]] = {
        "list": _accounts_list,
        "import": _accounts_import,
        "login": _accounts_login,
        "remove": _accounts_remove,
        "enable": _accounts_enable,
        "disable": _accounts_enable,
        "use": _accounts_use,
        "refresh": _accounts_refresh,
    }
    return handlers[args.accounts_command](args, config)


def _accounts_list(args: argparse.Namespace, config: Config) -> int:
    import time

    from trio_pool.login.listing import live_accounts, render_accounts, row_document
    from trio_pool.login.pooldir import list_accounts

    rows = list_accounts(config)
    live = trio.run(live_accounts, config) if rows else None
    now = time.time()
    document = {
        "proxy_running": live is not None,
        "accounts": [row_document(r, (live or {}).get(r.name), now) for r in rows],
    }
    _emit(args, document, render_accounts(rows, live, now))
    return 0


def _accounts_import(args: argparse.Namespace, config: Config) -> int:
    import os

    from trio_pool.login.importer import SHARED_LOGIN_WARNING, import_login

    source = Path(args.source).expanduser() if args.source else None

    def check(document: dict[str, Any]) -> None:
        if args.provider == "gemini":
            warning = trio.run(_check_gemini, config, document)
            if warning is not None:
                _note(f"warning: {warning}")

    done = import_login(
        config.pool_dir,
        args.provider,
        source=source,
        name=args.name,
        env=os.environ,
        home=Path.home(),
        platform=sys.platform,
        check=check,
    )
    verb = "replaced" if done.replaced else "added"
    document = {"name": done.name, "path": str(done.path), "source": str(done.source)}
    _emit(args, {**document, "replaced": done.replaced}, f"{verb} {done.name} ({done.path})")
    _note("warning: " + SHARED_LOGIN_WARNING.format(provider=args.provider))
    return 0


async def _check_gemini(config: Config, document: dict[str, Any]) -> str | None:
    from trio_pool.login.gemini_check import check_gemini_login
    from trio_pool.upstream.client import UpstreamClient

    client = UpstreamClient()
    try:
        return await check_gemini_login(config, client, document)
    finally:
        await client.aclose()


def _accounts_login(args: argparse.Namespace, config: Config) -> int:
    import os
    import webbrowser

    from trio_pool.login.flows import LoginOptions, LoginUI, run_login
    from trio_pool.login.pooldir import add_account, check_name
    from trio_pool.login.remote import send_login
    from trio_pool.upstream.client import UpstreamClient

    if args.name:
        check_name(args.name)
    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV)

    async def read_code(prompt: str) -> str:
        return await trio.to_thread.run_sync(input, prompt, abandon_on_cancel=True)

    ui = LoginUI(
        notify=_note,
        read_code=read_code,
        open_browser=None if args.no_browser else webbrowser.open,
    )
    options = LoginOptions(no_browser=args.no_browser, timeout_s=args.timeout)

    async def run() -> dict[str, Any]:
        client = UpstreamClient()
        try:
            result = await run_login(args.provider, config, client, ui, options)
            # Google's email may come from userinfo only: name the account explicitly.
            name = args.name or result.email
            if args.server:
                answer = await send_login(
                    client, args.server, token, args.provider, result.document, name
                )
                return {"name": answer.get("name"), "server": args.server, **answer}
        finally:
            await client.aclose()
        name, path, replaced = await trio.to_thread.run_sync(
            add_account, config.pool_dir, args.provider, result.document, name
        )
        return {"name": name, "path": str(path), "replaced": replaced, "email": result.email}

    done = trio.run(run)
    where = f"on {done['server']}" if "server" in done else f"in {done.get('path')}"
    _emit(
        args,
        done,
        f"logged in: {done['name']} is {'replaced' if done.get('replaced') else 'in the pool'} ({where})",
    )
    return 0


def _accounts_remove(args: argparse.Namespace, config: Config) -> int:
    from trio_pool.login.manage import remove_account

    path = remove_account(config, args.name)
    _emit(args, {"removed": str(path)}, f"removed {path} (a running proxy drops it within 2 s)")
    return 0


def _accounts_enable(args: argparse.Namespace, config: Config) -> int:
    from trio_pool.login import LoginError
    from trio_pool.login.manage import set_disabled
    from trio_pool.login.pooldir import find_account
    from trio_pool.login.remote import admin_call
    from trio_pool.upstream.client import UpstreamClient

    disabled = args.accounts_command == "disable"
    name = find_account(config, args.name).name
    config_file = find_config_file(args.config) or Path("config.toml")
    set_disabled(config_file, name, disabled)
    live = "restart trio-pool to apply it to a running proxy (or set admin_token to apply live)"
    if config.admin_token:

        async def tell_proxy() -> str:
            client = UpstreamClient()
            try:
                url = f"http://{config.listen_host}:{config.listen_port}"
                await admin_call(
                    client,
                    url,
                    config.admin_token,
                    "POST",
                    f"/api/accounts/{name}/{args.accounts_command}",
                )
                return "applied to the running proxy"
            except LoginError:
                return "the proxy is not running; it applies at the next start"
            finally:
                await client.aclose()

        live = trio.run(tell_proxy)
    document = {"name": name, "disabled": disabled, "config": str(config_file), "live": live}
    _emit(args, document, f"{name} {args.accounts_command}d in {config_file}; {live}")
    return 0


def _accounts_use(args: argparse.Namespace, config: Config) -> int:
    import os

    from trio_pool.login.switch import use_account

    done = use_account(config, args.name, env=os.environ, home=Path.home(), platform=sys.platform)
    backup = str(done.backup) if done.backup else None
    document = {"name": done.name, "target": str(done.target), "backup": backup}
    text = f"{done.target} now holds {done.name}" + (
        f" (previous file: {backup})" if backup else ""
    )
    _emit(args, {**document, "notes": list(done.notes)}, text)
    for note in done.notes:
        _note(f"note: {note}")
    return 0


def _accounts_refresh(args: argparse.Namespace, config: Config) -> int:
    import time

    from trio_pool.login.listing import _expiry
    from trio_pool.login.manage import refresh_accounts
    from trio_pool.upstream.client import UpstreamClient

    if not args.names and not args.all:
        print("trio-pool: name accounts to refresh, or pass --all", file=sys.stderr)
        return 2

    async def run() -> list[Any]:
        client = UpstreamClient()
        try:
            return await refresh_accounts(config, None if args.all else args.names, client)
        finally:
            await client.aclose()

    results = trio.run(run)
    now = time.time()
    width = max((len(r.name) for r in results), default=0)
    lines = [
        f"{r.name.ljust(width)}  "
        + (f"ok, token expires {_expiry(r.expires_at, now)}" if r.ok else f"FAILED: {r.detail}")
        for r in results
    ]
    document = [
        {"name": r.name, "ok": r.ok, "detail": r.detail, "expires_at": r.expires_at}
        for r in results
    ]
    _emit(args, document, "\n".join(lines) or "no accounts in the pool")
    return 0 if all(r.ok for r in results) else 1


def _cmd_setup(args: argparse.Namespace) -> int:
    import os

    from trio_pool.setup.clients import (
        KEY_NEXT_STEPS,
        NEXT_STEPS,
        apply_setup,
        plan_setup,
        undo_setup,
    )

    config = _config_from_args(args)
    env, home = os.environ, Path.home()
    if args.undo:
        path, what = undo_setup(args.provider, env=env, home=home)
        _emit(args, {"path": str(path), "undone": what}, f"{path}: {what}")
        return 0
    host = "127.0.0.1" if config.listen_host in ("0.0.0.0", "::", "") else config.listen_host
    url = args.url or f"http://{host}:{config.listen_port}"
    plan = plan_setup(
        args.provider, url, env=env, home=home, key=args.key, custom_provider=args.custom_provider
    )
    document: dict[str, Any] = {"path": str(plan.path), "changed": plan.changed, "written": False}
    next_step = (NEXT_STEPS if args.key is None else KEY_NEXT_STEPS)[args.provider]
    if not plan.changed:
        if args.write:
            apply_setup(plan)  # writes nothing; only makes a file holding the key 0600
        text = f"{plan.path} already points {args.provider} at {url}; nothing to change"
    elif not args.write:
        text = f"{plan.diff()}\nrun again with --write to apply this (a backup is kept)"
        document["diff"] = plan.diff()
    else:
        backup = apply_setup(plan)
        document |= {"written": True, "backup": str(backup)}
        text = (
            f"wrote {plan.path} (undo with `trio-pool setup {args.provider} --undo`)\n"
            f"next: {next_step}"
        )
    _emit(args, document, text)
    return 0


# -- service ----------------------------------------------------------------------------------


def _add_service_command(sub: Any) -> None:
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


def _add_users_commands(sub: Any) -> None:
    users = sub.add_parser("users", help="people who share this pool, and their pool keys")
    verbs = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        _add_config_args(parser)
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
    _add_config_args(password)
    password.add_argument(
        "--stdin", action="store_true", help="read the password from standard input"
    )


def _cmd_users(args: argparse.Namespace) -> int:
    from trio_pool.auth.manage import render_users, run_with_directory, user_documents
    from trio_pool.auth.model import UserLimits

    config = _config_from_args(args)
    verb = args.users_command
    if verb == "list":
        documents = run_with_directory(config, user_documents)
        _emit(args, {"users": documents}, render_users(documents))
        return 0
    if verb in ("add", "limits"):
        limits = UserLimits(args.rpm, args.streams, args.share)
        if verb == "limits":
            run_with_directory(config, lambda d: d.set_limits(args.name, limits))
            print(f"limits of {args.name} set")
            return 0
        user, key = run_with_directory(config, lambda d: d.add_user(args.name, limits))
        print(f"added {user.name}; their pool key (shown only now):\n  {key}")
        server = f"http://{'<this-host>' if config.listen_host in ('0.0.0.0', '::') else config.listen_host}:{config.listen_port}"
        _note(
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

    config = _config_from_args(args)
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
