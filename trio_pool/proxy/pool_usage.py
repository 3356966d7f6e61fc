"""Codex's ``wham/usage``, answered from the pool's numbers (design.md §3.6)."""

from __future__ import annotations

import json
from typing import Any

from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.server.connection import Exchange

JSON = [("content-type", "application/json"), ("cache-control", "no-store")]


async def answer_pool_usage(exchange: Exchange, pool: Pool) -> None:
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
