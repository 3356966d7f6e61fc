"""Answers the proxy gives itself: /healthz, Codex's wham/usage from the pool, unknown paths."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import attrs

from trio_pool import __version__, clock
from trio_pool.accounts.pool import Pool
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.providers.base import ProviderName
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead

log = logging.getLogger(__name__)

JSON = [("content-type", "application/json"), ("cache-control", "no-store")]


def guess_provider(head: RequestHead) -> ProviderName:
    """Whose error shape an unknown path gets: by path prefix and Anthropic headers."""
    if head.path.startswith("/v1internal"):
        return "gemini"
    if head.get("anthropic-version") is not None or head.path.startswith("/v1/messages"):
        return "claude"
    return "codex"


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


async def healthz(
    exchange: Exchange, pool: Pool, registry: AccountRegistry, *, full: bool = True
) -> None:
    """The pool's health; ``full=False`` (a stranger to a shared pool): only that it is up."""
    document = health_document(pool, registry)
    if not full:
        document = {"status": document["status"], "version": document["version"]}
    body = json.dumps(document, indent=2).encode()
    await exchange.respond(200, JSON, body)


async def codex_pool_usage(exchange: Exchange, pool: Pool) -> None:
    """Codex reads wham/usage to show and enforce limits: answer with the pool's aggregate,
    so one exhausted account does not block a client while the pool still has room."""
    now = clock.now()
    usage = pool.pool_usage("codex", now)
    # The main family only: a model family's numbers never stand in for the 5h/weekly ones.
    windows = sorted((w for w in usage.windows if w.scope is None), key=lambda w: w.window_s or 0)

    def window(w: Any) -> dict[str, Any] | None:
        if w is None:
            return None
        resets_at = int(w.resets_at) if w.resets_at else int(now + (w.window_s or 0))
        return {
            "used_percent": round(w.used * 100),
            "limit_window_seconds": int(w.window_s or 0),
            "reset_after_seconds": max(0, resets_at - int(now)),
            "reset_at": resets_at,
        }

    primary = windows[0] if windows else None
    secondary = windows[1] if len(windows) > 1 else None
    limit_reached = any(w.used >= 1.0 for w in windows)
    document = {
        "plan_type": usage.plan or "pro",
        "rate_limit": {
            "allowed": not limit_reached,
            "limit_reached": limit_reached,
            "primary_window": window(primary),
            "secondary_window": window(secondary),
        },
        "credits": {"has_credits": False, "unlimited": False, "balance": "0"},
    }
    await exchange.respond(200, JSON, json.dumps(document).encode())
