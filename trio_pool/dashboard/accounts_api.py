"""The management API under ``/api/accounts``: list, import, remove, refresh, enable, disable.

Admins only (``dashboard.routes`` decides): scripts send ``admin_token`` as a Bearer,
compared in constant time; the dashboard sends its session cookie. A refused call is
logged with the client address, never with what it sent.

enable/disable act on the running pool at once and last until the proxy restarts (a file
change does not undo them); ``trio-pool accounts disable`` also writes config.toml.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from typing import Any

import attrs
import trio

from trio_pool import clock
from trio_pool.credentials.registry import collect
from trio_pool.dashboard.context import DashboardServices
from trio_pool.errors import CredentialsError, LoginError
from trio_pool.login.listing import row_document
from trio_pool.login.pooldir import add_account, list_accounts
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS
from trio_pool.server.connection import Exchange

log = logging.getLogger(__name__)

JSON = [("content-type", "application/json"), ("cache-control", "no-store")]
ACTIONS = ("refresh", "enable", "disable")
PREFIX = "/api/accounts"


def is_admin_path(path: str) -> bool:
    """Only /api/accounts...: Codex itself uses /api/codex/usage with some base URLs."""
    return path == PREFIX or path.startswith(PREFIX + "/")


async def _reply(ex: Exchange, status: int, document: Any) -> None:
    await ex.respond(status, JSON, json.dumps(document, indent=2).encode() + b"\n")


async def _error(ex: Exchange, status: int, kind: str, message: str) -> None:
    headers = [("www-authenticate", "Bearer")] if status == 401 else []
    body = json.dumps({"error": {"type": kind, "message": message}}).encode()
    await ex.respond(status, [*JSON, *headers], body)


async def handle(ex: Exchange, services: DashboardServices) -> None:
    """An admin's call (the dashboard's router has checked who is calling)."""
    parts = [urllib.parse.unquote(p) for p in ex.head.path.strip("/").split("/")]
    method = ex.head.method
    try:
        if parts == ["api", "accounts"] and method == "GET":
            await _list(ex, services)
        elif parts == ["api", "accounts"] and method == "POST":
            await _import(ex, services)
        elif len(parts) == 4 and parts[:2] == ["api", "accounts"] and method == "DELETE":
            await _remove(ex, services, f"{parts[2]}/{parts[3]}")
        elif len(parts) == 5 and parts[:2] == ["api", "accounts"] and parts[4] in ACTIONS:
            if method != "POST":
                await _error(ex, 405, "method_not_allowed", f"use POST for {parts[4]}")
            else:
                await _action(ex, services, f"{parts[2]}/{parts[3]}", parts[4])
        else:
            await _error(ex, 404, "not_found", f"no management route {method} {ex.head.path}")
    except LoginError as exc:
        await _error(ex, 409, "conflict", str(exc))


async def _rescan(services: DashboardServices) -> None:
    """Bring the registry in step with the files now, not at the next reload tick."""
    registry = services.registry
    found = await trio.to_thread.run_sync(
        collect, registry.config.pool_dir, registry.known_signatures()
    )
    registry.apply(found)


async def _list(ex: Exchange, services: DashboardServices) -> None:
    rows = await trio.to_thread.run_sync(list_accounts, services.registry.config)
    now = clock.now()
    live = {view.name: attrs.asdict(view) for view in services.pool.accounts(now)}
    documents = [row_document(row, live.get(row.name), now) for row in rows]
    await _reply(ex, 200, {"accounts": documents})


async def _import(ex: Exchange, services: DashboardServices) -> None:
    try:
        request = json.loads(await ex.read_body())
    except (ValueError, UnicodeDecodeError):
        await _error(ex, 400, "invalid_request", "the body is not JSON")
        return
    provider = request.get("provider") if isinstance(request, dict) else None
    document = request.get("document") if isinstance(request, dict) else None
    name = request.get("name") if isinstance(request, dict) else None
    if provider not in PROVIDERS or not isinstance(document, dict):
        await _error(
            ex, 400, "invalid_request", 'expected {"provider": ..., "document": {...}, "name"?}'
        )
        return
    if name is not None and not isinstance(name, str):
        await _error(ex, 400, "invalid_request", "name: expected a string")
        return
    try:
        PROVIDER_REGISTRY[provider].parse_credentials(document)
    except CredentialsError as exc:
        await _error(ex, 400, "invalid_credentials", f"not a usable {provider} login: {exc}")
        return
    account, _path, replaced = await trio.to_thread.run_sync(
        add_account, services.registry.config.pool_dir, provider, document, name
    )
    await _rescan(services)
    log.info("admin.account.imported account=%s replaced=%s", account, replaced)
    await _reply(ex, 201, {"name": account, "replaced": replaced})


async def _remove(ex: Exchange, services: DashboardServices, name: str) -> None:
    account = services.registry.get(name)
    path = account.path if account is not None else None
    if path is None:
        await _error(ex, 404, "not_found", f"no account {name}")
        return
    await trio.to_thread.run_sync(path.unlink)
    await _rescan(services)
    log.info("admin.account.removed account=%s", name)
    await _reply(ex, 200, {"name": name, "removed": True})


async def _action(ex: Exchange, services: DashboardServices, name: str, action: str) -> None:
    account = services.registry.get(name)
    if account is None:
        await _error(ex, 404, "not_found", f"no account {name}")
        return
    if action == "refresh":
        ok = await services.refresher.refresh(account, reason="admin", stale=account.credentials)
        if not ok:
            await _error(ex, 502, "refresh_failed", f"refreshing {name} failed; see the proxy log")
            return
        document = {"name": name, "refreshed": True, "expires_at": account.credentials.expires_at}
        await _reply(ex, 200, document)
        return
    disabled = action == "disable"
    registry = services.registry
    config = registry.config
    settings = attrs.evolve(config.account_settings(name), disabled=disabled)
    # The registry re-applies these settings whenever the file changes: keep them there.
    registry.config = attrs.evolve(config, accounts={**config.accounts, name: settings})
    services.pool.set_account(
        name,
        account.provider,
        priority=settings.priority,
        disabled=disabled,
        plan=account.credentials.plan,
    )
    log.info("admin.account.%sd account=%s", action, name)
    await _reply(ex, 200, {"name": name, "disabled": disabled, "until": "restart"})
