"""The dashboard's data API: overview, pool, usage, requests, live feed, setup, Try it.

The lead's router has already checked that the caller may view; ``handle`` answers the
routes below and returns False for any other path. Reads of the ledger run on the state
store's worker thread (state.db, or PostgreSQL with every host's rows in multi-host mode);
with no state db the answers are empty, never an error.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from trio_pool import clock
from trio_pool.auth.model import Caller
from trio_pool.dashboard import http, try_it
from trio_pool.dashboard.context import DataServices
from trio_pool.dashboard.live import relay_live
from trio_pool.dashboard.overview import overview_document
from trio_pool.errors import StateError, TryInputError
from trio_pool.providers.base import PROVIDERS
from trio_pool.server.connection import Exchange
from trio_pool.setup.instructions import instructions
from trio_pool.usage import queries
from trio_pool.usage.ledger import HOUR_S, hour_of

log = logging.getLogger(__name__)

DAY_S = 86400.0
USAGE_HOURS = (24, 168, 720)
USAGE_BY = ("provider", "account", "model", "user")
MAX_REQUESTS = 200
KEY_RE = re.compile(r"^tp-[A-Za-z0-9_-]{40}$")


Route = Callable[[Exchange, DataServices, Caller], Awaitable[None]]


async def handle(ex: Exchange, services: DataServices, caller: Caller, parts: list[str]) -> bool:
    """Answer ``/api/<name>`` if it is one of ours; False (nothing sent) otherwise.
    (``routes`` has checked that the caller may view, and the CSRF header on changes.)"""
    if len(parts) != 2 or parts[0] != "api" or parts[1] not in ROUTES:
        return False
    methods = ROUTES[parts[1]]
    route = methods.get(ex.head.method)
    if route is None:
        allow = ", ".join(sorted(methods))
        await http.error(ex, 405, "method_not_allowed", f"use {allow}", headers=[("allow", allow)])
        return True
    try:
        await route(ex, services, caller)
    except StateError as exc:
        log.error("dashboard.state.failed path=%s reason=%s", ex.head.path, exc)
        if not ex.response_started:
            await http.error(ex, 503, "state_unavailable", "the state db cannot be read now")
    return True


def _query(ex: Exchange) -> dict[str, str]:
    return {k: v[-1] for k, v in urllib.parse.parse_qs(ex.head.query).items()}


# -- routes -------------------------------------------------------------------------------


async def _overview(ex: Exchange, services: DataServices, caller: Caller) -> None:
    now = clock.now()
    usages = {name: services.pool.pool_usage(name, now) for name in PROVIDERS}
    for usage in usages.values():
        services.burn.observe(usage, now)
    last_24h: dict[str, int] = {}
    if services.history is not None:
        last_24h = await services.history.run(queries.totals_since, now - DAY_S)
    views = services.pool.accounts(now)
    await http.reply(ex, 200, overview_document(usages, views, services.burn, last_24h, now))


async def _pool(ex: Exchange, services: DataServices, caller: Caller) -> None:
    now = clock.now()
    views = sorted(services.pool.accounts(now), key=lambda v: (v.provider, v.name))
    accounts = [{**attrs.asdict(v), "disabled": v.state == "disabled"} for v in views]
    problems = [
        {"account": name, "reason": why} for name, why in sorted(services.registry.problems.items())
    ]
    await http.reply(ex, 200, {"now": now, "accounts": accounts, "problems": problems})


async def _usage(ex: Exchange, services: DataServices, caller: Caller) -> None:
    query = _query(ex)
    hours_text, by = query.get("hours", "24"), query.get("by", "provider")
    if not hours_text.isdigit() or int(hours_text) not in USAGE_HOURS:
        hours_list = "|".join(map(str, USAGE_HOURS))
        await http.error(ex, 400, "invalid_request", f"hours: expected {hours_list}")
        return
    if by not in USAGE_BY:
        await http.error(ex, 400, "invalid_request", f"by: expected {'|'.join(USAGE_BY)}")
        return
    until_hour = hour_of(clock.now())
    since_hour = until_hour - (int(hours_text) - 1) * HOUR_S
    if services.history is None:
        document = queries.empty_series(since_hour, until_hour, by)
    else:
        document = await services.history.run(
            queries.usage_series, since_hour, until_hour, by, only_mine(caller)
        )
    await http.reply(ex, 200, document)


def only_mine(caller: Caller) -> str | None:
    """A plain user sees their own usage and requests only (None: everything)."""
    return caller.name if caller.role == "user" else None


async def _requests(ex: Exchange, services: DataServices, caller: Caller) -> None:
    text = _query(ex).get("limit", "50")
    if not text.isdigit() or not 1 <= int(text) <= MAX_REQUESTS:
        await http.error(ex, 400, "invalid_request", f"limit: expected 1..{MAX_REQUESTS}")
        return
    limit = int(text)
    user = only_mine(caller)
    documents = [
        d for d in services.live.recent(services.live.keep) if user is None or d.get("user") == user
    ][:limit]
    if len(documents) < limit and services.history is not None:
        # After a restart (or with other processes, or hosts) the ledger has what memory
        # lacks.
        stored = await services.history.run(queries.recent_rows, limit, user)
        documents = merge_requests(documents, stored, limit)
    await http.reply(ex, 200, {"requests": documents})


def merge_requests(
    live: list[dict[str, Any]], stored: list[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Memory's documents plus the ledger's that memory does not hold, newest first."""

    def key(d: dict[str, Any]) -> tuple[Any, ...]:
        return (round(float(d["at"]), 3), d["provider"], d.get("account"), d.get("status"))

    seen = {key(d) for d in live}
    merged = live + [d for d in stored if key(d) not in seen]
    merged.sort(key=lambda d: float(d["at"]), reverse=True)
    return merged[:limit]


async def _live(ex: Exchange, services: DataServices, caller: Caller) -> None:
    await relay_live(ex, services.live, services.shutdown, only_user=only_mine(caller))


def public_address(ex: Exchange, self_url: str) -> str:
    """The address the caller reached us at (what their CLIs should use), else self_url."""
    host = ex.head.get("host")
    if not host or not re.fullmatch(r"[A-Za-z0-9.\-:\[\]]{1,255}", host):
        return self_url.rstrip("/")
    proto = (ex.head.get("x-forwarded-proto") or "http").split(",")[0].strip().lower()
    return f"{'https' if proto == 'https' else 'http'}://{host}"


async def _setup_get(ex: Exchange, services: DataServices, caller: Caller) -> None:
    address = public_address(ex, services.self_call.url)
    await http.reply(ex, 200, instructions(address, None, shared=services.directory.shared))


async def _setup_post(ex: Exchange, services: DataServices, caller: Caller) -> None:
    document = await http.read_json(ex)
    if document is None:
        return
    key = document.get("key")
    if not isinstance(key, str) or not KEY_RE.match(key):
        await http.error(ex, 400, "invalid_request", 'key: expected "tp-" and 40 characters')
        return
    await http.reply(ex, 200, instructions(public_address(ex, services.self_call.url), key))


async def _try(ex: Exchange, services: DataServices, caller: Caller) -> None:
    document = await http.read_json(ex)
    if document is None:
        return
    try:
        request = try_it.parse_try(document)
    except TryInputError as exc:
        await http.error(ex, 400, "invalid_request", str(exc))
        return
    answer = await try_it.try_request(
        services.client, services.self_call.url, services.self_call.token, caller.name, request
    )
    await http.reply(ex, 200, answer)


ROUTES: dict[str, dict[str, Route]] = {
    "overview": {"GET": _overview},
    "pool": {"GET": _pool},
    "usage": {"GET": _usage},
    "requests": {"GET": _requests},
    "live": {"GET": _live},
    "setup": {"GET": _setup_get, "POST": _setup_post},
    "try": {"POST": _try},
}
