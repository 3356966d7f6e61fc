"""The one router of the process: every request the server reads comes here first.

```
screen (bad paths, rebinding, users unknown)  -> refused in the guessed provider's shape
/healthz                                      -> the pool's health (details to insiders)
/metrics                                      -> the counters (insiders only)
a provider's path (providers.find_route)      -> proxy.forward.answer_route
the dashboard (/, /assets/, /api/)            -> dashboard.routes.handle
anything else                                 -> 404 in the guessed provider's shape
```
It sits above both ``proxy/`` and ``dashboard/``, which never import each other.
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs

from trio_pool import __version__, clock
from trio_pool.accounts.pool import Pool
from trio_pool.auth.callers import is_insider
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.dashboard import routes as dashboard
from trio_pool.providers import PROVIDER_REGISTRY, find_route, guess_provider
from trio_pool.proxy import answers, gate
from trio_pool.proxy.forward import answer_route
from trio_pool.proxy.websocket import realtime_route
from trio_pool.server.connection import Exchange
from trio_pool.services import Services
from trio_pool.usage.metrics import CONTENT_TYPE

JSON = [("content-type", "application/json"), ("cache-control", "no-store")]


async def handle(services: Services, exchange: Exchange) -> None:
    """Answer one request (the server's handler: ``partial(handle, services)``)."""
    head = exchange.head
    if await gate.screen(services, exchange):
        return
    path = head.path
    if path == "/healthz":
        engine = None if services.engine is None else services.engine()
        await answer_healthz(
            exchange,
            services.pool,
            services.registry,
            full=_insider(services, exchange),
            engine=engine,
        )
        return
    if path == "/metrics":
        await answer_metrics(services, exchange)
        return
    route = find_route(head, services.upstreams) or realtime_route(head, services.config)
    if route is not None:
        await answer_route(services, exchange, route)
    elif dashboard.is_dashboard_path(path):
        await dashboard.handle(exchange, services)
    else:
        provider = PROVIDER_REGISTRY[guess_provider(head)]
        message = f"trio-pool does not serve {head.method} {path}"
        await answers.send_error(exchange, provider, 404, message, "not_found")


def _insider(services: Services, exchange: Exchange) -> bool:
    head = exchange.head
    return is_insider(head, exchange.client, services.config, services.directory, clock.now())


async def answer_metrics(services: Services, exchange: Exchange) -> None:
    """GET /metrics: for insiders; a stranger gets a 401 in the shape its path suggests."""
    if not _insider(services, exchange):
        provider = PROVIDER_REGISTRY[guess_provider(exchange.head)]
        await answers.send_error(exchange, provider, 401, "admins only", "unauthorized")
        return
    accounts = services.pool.accounts(clock.now())
    text = services.metrics.render(accounts, ledger_dropped=services.events.ledger_dropped)
    await exchange.respond(200, [("content-type", CONTENT_TYPE)], text.encode())


def _jsonable(value: Any) -> Any:
    if attrs.has(type(value)):
        return {k: _jsonable(v) for k, v in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def health_document(pool: Pool, registry: AccountRegistry) -> dict[str, Any]:
    now = clock.now()
    return {
        "status": "ok",
        "version": __version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "accounts": [_jsonable(view) for view in pool.accounts(now)],
        "problems": [
            {"account": name, "reason": why} for name, why in sorted(registry.problems.items())
        ],
    }


async def answer_healthz(
    exchange: Exchange,
    pool: Pool,
    registry: AccountRegistry,
    *,
    full: bool = True,
    engine: dict[str, Any] | None = None,
) -> None:
    """The pool's health; ``full=False`` (a stranger to a shared pool): only that it is up.

    Multi-host: ``state`` says whether the shared engine is reachable; when it is not the
    status is "degraded" (routing serves from memory, refreshes are refused)."""
    document = health_document(pool, registry)
    if engine is not None:
        document["state"] = engine
        if engine.get("engine") == "postgresql" and not engine.get("reachable"):
            document["status"] = "degraded"
    if not full:
        document = {"status": document["status"], "version": document["version"]}
    body = json.dumps(document, indent=2).encode()
    await exchange.respond(200, JSON, body)
