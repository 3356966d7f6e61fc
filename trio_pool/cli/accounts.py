"""`trio-pool accounts ...`: list, import, log in, remove, enable/disable, use, refresh."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from trio_pool.cli.args import (
    ADMIN_TOKEN_ENV,
    PROVIDER_CHOICES,
    add_config_args,
    config_from_args,
    emit,
    note,
)
from trio_pool.config import Config, find_config_file
from trio_pool.logs import setup_logging


def add_commands(sub: Any) -> None:
    accounts = sub.add_parser("accounts", help="list, add, log in, remove and switch accounts")
    verbs = accounts.add_subparsers(dest="accounts_command", metavar="ACTION", required=True)

    def verb(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = verbs.add_parser(name, help=help_text)
        add_config_args(parser)
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


def _cmd_accounts(args: argparse.Namespace) -> int:
    setup_logging("debug" if args.debug else "warning")
    config = config_from_args(args)
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

    if config.state_url is not None:
        from trio_pool.login.shared_store import shared_rows

        rows = trio.run(shared_rows, config)  # multi-host: the shared store is the pool
    else:
        rows = list_accounts(config)
    live = trio.run(live_accounts, config) if rows else None
    now = time.time()
    document = {
        "proxy_running": live is not None,
        "accounts": [row_document(r, (live or {}).get(r.name), now) for r in rows],
    }
    emit(args, document, render_accounts(rows, live, now))
    return 0


def _accounts_import(args: argparse.Namespace, config: Config) -> int:
    import os

    from trio_pool.login.importer import SHARED_LOGIN_WARNING, import_login

    source = Path(args.source).expanduser() if args.source else None

    def check(document: dict[str, Any]) -> None:
        if args.provider == "gemini":
            warning = trio.run(_check_gemini, config, document)
            if warning is not None:
                note(f"warning: {warning}")

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
    emit(args, {**document, "replaced": done.replaced}, f"{verb} {done.name} ({done.path})")
    note("warning: " + SHARED_LOGIN_WARNING.format(provider=args.provider))
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
        notify=note,
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
    emit(
        args,
        done,
        f"logged in: {done['name']} is {'replaced' if done.get('replaced') else 'in the pool'} ({where})",
    )
    return 0


def _accounts_remove(args: argparse.Namespace, config: Config) -> int:
    from trio_pool.login.manage import remove_account

    if config.state_url is not None:
        from trio_pool.login.shared_store import remove_shared

        removed = trio.run(remove_shared, config, args.name)
        also = f" and deleted {removed.file}" if removed.file else ""
        text = (
            f"removed {removed.name} from the shared store{also} (every host drops it within 1 s)"
        )
        emit(args, {"removed": removed.name, "file": str(removed.file or "")}, text)
        return 0
    path = remove_account(config, args.name)
    emit(args, {"removed": str(path)}, f"removed {path} (a running proxy drops it within 2 s)")
    return 0


def _accounts_enable(args: argparse.Namespace, config: Config) -> int:
    from trio_pool.errors import LoginError
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
                await admin_call(
                    client,
                    config.local_url,
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
    emit(args, document, f"{name} {args.accounts_command}d in {config_file}; {live}")
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
    emit(args, {**document, "notes": list(done.notes)}, text)
    for line in done.notes:
        note(f"note: {line}")
    return 0


def _accounts_refresh(args: argparse.Namespace, config: Config) -> int:
    import time

    from trio_pool.login.listing import expires_in
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
        + (f"ok, token expires {expires_in(r.expires_at, now)}" if r.ok else f"FAILED: {r.detail}")
        for r in results
    ]
    document = [
        {"name": r.name, "ok": r.ok, "detail": r.detail, "expires_at": r.expires_at}
        for r in results
    ]
    emit(args, document, "\n".join(lines) or "no accounts in the pool")
    return 0 if all(r.ok for r in results) else 1


COMMANDS = {"accounts": _cmd_accounts}
