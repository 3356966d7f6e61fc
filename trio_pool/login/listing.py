"""``accounts list``: the pool files as a table or JSON, with the running proxy's live state
and window use when it answers (the list works without it)."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from trio_pool.config import Config
from trio_pool.errors import TrioPoolError
from trio_pool.login.pooldir import AccountRow
from trio_pool.status import _duration, fetch_health

LIVE_TIMEOUT_S = 3.0


async def live_accounts(config: Config) -> dict[str, dict[str, Any]] | None:
    """The running proxy's view of each account, or None when no proxy answers."""
    with trio.move_on_after(LIVE_TIMEOUT_S):
        try:
            document = await fetch_health(config)
        except TrioPoolError:
            return None
        return {str(a.get("name")): a for a in document.get("accounts", [])}
    return None


def expires_in(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "-"
    if expires_at <= now:
        return f"expired {_duration(now - expires_at)} ago"
    return f"in {_duration(expires_at - now)}"


def _use(live: dict[str, Any] | None) -> str:
    if live is None:
        return "-"
    parts = [
        f"{w.get('name', '?')} {float(w.get('used') or 0) * 100:.0f}%"
        for w in live.get("windows") or []
    ]
    return " · ".join(parts) or "no reading yet"


def row_document(row: AccountRow, live: dict[str, Any] | None, now: float) -> dict[str, Any]:
    document = attrs.asdict(row)
    document["path"] = str(row.path)
    document["state"] = str(live.get("state")) if live else row.state(now)
    document["windows"] = live.get("windows") if live else None
    return document


def render_accounts(
    rows: list[AccountRow],
    live: dict[str, dict[str, Any]] | None,
    now: float,
) -> str:
    if not rows:
        return (
            "no accounts in the pool yet. Add one:\n"
            "  trio-pool accounts login codex|claude|gemini   (a new session for the pool)\n"
            "  trio-pool accounts import codex|claude|gemini  (the login the CLI already has)"
        )
    header = ("ACCOUNT", "EMAIL", "PLAN", "STATE", "TOKEN", "REFRESH", "USE")
    table = []
    for row in rows:
        view = live.get(row.name) if live else None
        state = str(view.get("state")).replace("_", "-") if view else row.state(now)
        if view is not None and view.get("state") == "needs_action":
            state += f" ({view.get('state_reason')})"  # the upstream's words, and the link
        if row.problem:
            state = f"unreadable ({row.problem})"
        table.append(
            (
                row.name,
                row.email or "-",
                row.plan or "-",
                state,
                expires_in(row.expires_at, now),
                row.refresh or "-",
                _use(view),
            )
        )
    widths = [max(len(r[i]) for r in [header, *table]) for i in range(len(header) - 1)]
    lines = [
        "  ".join([*(r[i].ljust(widths[i]) for i in range(len(widths))), r[-1]]).rstrip()
        for r in [header, *table]
    ]
    if live is None:
        lines.append("(the proxy is not running: state from the files, no window use)")
    return "\n".join(lines)
