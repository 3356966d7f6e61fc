"""The overview: per provider, how much of each quota window the pool has used, how fast
it is going (``usage.burn``), and when it runs out at that pace.

Pure: no trio, no I/O, no clock; every time is unix seconds passed in as ``now``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trio_pool.accounts.model import AccountView, PoolUsage, PoolWindowUsage, ceiling
from trio_pool.providers.base import PROVIDERS, ProviderName, QuotaWindow
from trio_pool.usage.burn import BurnHistory


def runs_out_at(
    used_pct: float, limit_pct: float, rate: float | None, resets_at: float | None, now: float
) -> float | None:
    """When ``used_pct`` reaches ``limit_pct`` at ``rate`` %-points/h; None if never, or
    not before the window resets."""
    if rate is None or rate <= 0:
        return None
    at = now + max(0.0, limit_pct - used_pct) / rate * 3600
    if resets_at is not None and at >= resets_at:
        return None
    return at


def window_document(
    provider: str, window: PoolWindowUsage, history: BurnHistory, now: float
) -> dict[str, Any]:
    used_pct = round(window.used * 100, 2)
    rate = history.rate(provider, window.name, now)
    # The pool stops using an account at its ceiling (98 % / 99 %): that is "out".
    limit = ceiling(QuotaWindow(window.name, window.used, window.window_s, window.resets_at))
    return {
        "name": window.name,
        "used_pct": used_pct,
        "left_pct": round(max(0.0, 100 - used_pct), 2),
        "resets_at": window.resets_at,
        "window_s": window.window_s,
        "rate_pct_per_h": None if rate is None else round(rate, 3),
        "runs_out_at": runs_out_at(used_pct, limit * 100, rate, window.resets_at, now),
    }


def provider_document(
    usage: PoolUsage, views: Sequence[AccountView], history: BurnHistory, now: float
) -> dict[str, Any]:
    windows = sorted(usage.windows, key=lambda w: (w.window_s or 0, w.name))
    return {
        "provider": usage.provider,
        "accounts": len(views),
        "usable": sum(1 for v in views if v.state == "ok"),
        "plan": usage.plan,
        "windows": [window_document(usage.provider, w, history, now) for w in windows],
    }


def overview_document(
    usages: Mapping[ProviderName, PoolUsage],
    views: Sequence[AccountView],
    history: BurnHistory,
    last_24h: Mapping[str, int],
    now: float,
) -> dict[str, Any]:
    """GET /api/overview: every provider (in PROVIDERS order, also those without accounts)."""
    providers = [
        provider_document(usages[name], [v for v in views if v.provider == name], history, now)
        for name in PROVIDERS
        if name in usages
    ]
    keys = ("requests", "tokens", "errors", "failovers")
    return {
        "now": now,
        "providers": providers,
        "last_24h": {k: int(last_24h.get(k, 0)) for k in keys},
    }
