"""Frozen snapshots of the pool: per-account views and the pool's aggregate usage.

Pure: built from AccountState and ``now``; nothing here changes state.
"""

from __future__ import annotations

from trio_pool.accounts.model import (
    DAY_S,
    AccountState,
    AccountView,
    PoolUsage,
    PoolWindowUsage,
    WindowView,
)
from trio_pool.accounts.routing import assess
from trio_pool.providers.base import ProviderName, TokenUsage


def account_view(account: AccountState, now: float, pinned: int) -> AccountView:
    """One account as `status` and the dashboard show it."""
    state = assess(account, now)
    same_day = account.day == int(now // DAY_S)
    windows = tuple(
        WindowView(
            name=w.name,
            used=w.used_at(now),
            window_s=w.window.window_s,
            resets_at=w.window.resets_at,
            ceiling=w.limit,
            scope=w.window.scope,
        )
        for w in account.windows.values()
    )
    return AccountView(
        name=account.name,
        provider=account.provider,
        plan=account.plan,
        priority=account.priority,
        state=state.state,
        state_reason=state.reason,
        state_until=state.until,
        action=account.action,
        windows=windows,
        in_flight=account.in_flight,
        requests_today=account.requests_today if same_day else 0,
        tokens_today=account.tokens_today if same_day else TokenUsage(),
        tokens_total=account.tokens_total,
        last_used=account.last_used,
        pinned_conversations=pinned,
    )


def aggregate_usage(provider: ProviderName, members: list[AccountState], now: float) -> PoolUsage:
    """The pool's combined capacity per window name (design.md §3.6).

    ``members`` are the accounts that count as capacity (enabled, not needing re-login or
    any other action by the user).
    Each window's used fraction is the mean over them; an account with no reading for that
    window counts as unused, and a window whose reset passed counts as 0 (it came back).
    The reset shown is the earliest future one: that is when the pool next gains room.
    """
    names = sorted({n for a in members for n in a.windows})
    windows = []
    for name in names:
        seen = [a.windows[name] for a in members if name in a.windows]
        used = sum(w.used_at(now) for w in seen) / len(members)
        resets = [
            w.window.resets_at
            for w in seen
            if w.window.resets_at is not None and w.window.resets_at > now
        ]
        lengths = [w.window.window_s for w in seen if w.window.window_s is not None]
        windows.append(
            PoolWindowUsage(
                name,
                used,
                max(lengths, default=None),
                min(resets, default=None),
                seen[0].window.scope,
            )
        )
    plans = {a.plan for a in members if a.plan}
    return PoolUsage(
        provider=provider,
        windows=tuple(windows),
        accounts=len(members),
        available=any(assess(a, now).usable for a in members),
        plan=plans.pop() if len(plans) == 1 else None,
    )
