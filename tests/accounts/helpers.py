"""Small builders shared by the pool tests."""

from __future__ import annotations

from typing import Any

from trio_pool.accounts.pool import Exhausted, Lease, Pool
from trio_pool.config import RoutingConfig
from trio_pool.providers.base import (
    ConversationKey,
    Outcome,
    OutcomeKind,
    ProviderName,
    QuotaReading,
    QuotaWindow,
)

T0 = 1_700_000_000.0  # a fixed "now" (2023-11-14T22:13:20Z)
FIVE_H = 5 * 3600.0
WEEK = 7 * 86400.0


def make_pool(*names: str, provider: ProviderName = "codex", **routing: Any) -> Pool:
    pool = Pool(RoutingConfig(**routing))
    for name in names:
        pool.set_account(f"{provider}/{name}", provider)
    return pool


def key(value: str, *, hard: bool = False) -> ConversationKey:
    return ConversationKey(value, hard=hard)


def reading(
    used: float,
    *,
    name: str = "5h",
    resets_at: float | None = None,
    window_s: float | None = FIVE_H,
    exhausted: bool = False,
    reading_resets_at: float | None = None,
) -> QuotaReading:
    return QuotaReading(
        windows=(QuotaWindow(name, used, window_s, resets_at),),
        exhausted=exhausted,
        resets_at=reading_resets_at,
    )


def outcome(kind: OutcomeKind, **fields: Any) -> Outcome:
    return Outcome(kind, **fields)


def lease(result: Lease | Exhausted) -> Lease:
    assert isinstance(result, Lease), result
    return result


def exhausted(result: Lease | Exhausted) -> Exhausted:
    assert isinstance(result, Exhausted), result
    return result


def state_of(pool: Pool, name: str, now: float) -> str:
    return next(v.state for v in pool.accounts(now) if v.name == name)


def serve(pool: Pool, now: float, k: ConversationKey | None = None, **kw: Any) -> str:
    """Choose, report OK at once, and return the account name."""
    chosen = lease(pool.choose("codex", k, now, **kw))
    pool.report(chosen, Outcome(OutcomeKind.OK, 200), now)
    return chosen.account
