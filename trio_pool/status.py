"""`trio-pool status`: ask the running proxy's /healthz and draw it as an aligned table."""

from __future__ import annotations

import json
import time
from typing import Any

from trio_pool.config import Config
from trio_pool.errors import TrioPoolError, UpstreamError
from trio_pool.upstream.client import Timeouts, UpstreamClient

BAR_WIDTH = 10
_COLORS = {
    "ok": "32",
    "cooling": "33",
    "backoff": "33",
    "needs_relogin": "31",
    "needs_action": "31",
    "disabled": "2",
}


async def fetch_health(config: Config) -> dict[str, Any]:
    url = config.local_url + "/healthz"
    try:
        async with UpstreamClient(Timeouts(connect_s=2, first_byte_s=5, idle_s=5)) as client:
            _status, _headers, body = await client.request("GET", url, [])
    except UpstreamError as exc:
        raise TrioPoolError(
            f"trio-pool is not answering at {url} ({exc.__class__.__name__}); "
            "start it with `trio-pool serve` or pass --config/--listen"
        ) from None
    try:
        document: dict[str, Any] = json.loads(body)
    except ValueError:
        raise TrioPoolError(
            f"{url} did not answer with JSON; is something else listening there?"
        ) from None
    return document


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _bar(used: float) -> str:
    filled = round(max(0.0, min(1.0, used)) * BAR_WIDTH)
    return "█" * filled + "░" * (BAR_WIDTH - filled)


def _windows(account: dict[str, Any], now: float) -> str:
    parts = []
    for window in account.get("windows") or []:
        used = float(window.get("used") or 0.0)
        text = f"{window.get('name', '?')} {_bar(used)} {used * 100:3.0f}%"
        resets_at = window.get("resets_at")
        if resets_at:
            text += f" ↻{_duration(float(resets_at) - now)}"
        parts.append(text)
    return "  ".join(parts) or "no reading yet"


def _state(account: dict[str, Any], now: float) -> str:
    state = str(account.get("state", "?"))
    until = account.get("state_until")
    reason = account.get("state_reason") or ""
    text = state.replace("_", "-")
    if until:
        text += f" {_duration(float(until) - now)}"
    if reason and state != "ok":
        text += f" ({reason})"
    return text


def _tokens(account: dict[str, Any]) -> str:
    tokens = account.get("tokens_today") or {}
    total = int(tokens.get("input", 0)) + int(tokens.get("output", 0))
    return f"{total / 1000:.1f}k" if total >= 1000 else str(total)


def render_status(document: dict[str, Any], *, color: bool = False) -> str:
    now = time.time()
    header = ("ACCOUNT", "PLAN", "STATE", "REQ", "TOKENS", "WINDOWS")
    rows = [
        (
            str(a.get("name", "?")),
            str(a.get("plan") or "-"),
            _state(a, now),
            str(a.get("requests_today", 0)),
            _tokens(a),
            _windows(a, now),
        )
        for a in document.get("accounts", [])
    ]
    if not rows:
        lines = ["no accounts in the pool: copy CLI login files into pool/<provider>/NAME.json"]
    else:
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        lines = []
        for index, row in enumerate([header, *rows]):
            cells = [row[i].ljust(widths[i]) for i in range(len(widths))]
            if color and index > 0:
                code = _COLORS.get(str(document["accounts"][index - 1].get("state")), "0")
                cells[2] = f"\x1b[{code}m{cells[2]}\x1b[0m"
            lines.append("  ".join([*cells, row[-1]]).rstrip())
    for problem in document.get("problems", []):
        lines.append(f"skipped {problem.get('account')}: {problem.get('reason')}")
    engine = document.get("state") or {}
    if engine.get("engine") == "postgresql":
        if engine.get("reachable"):
            lines.append(f"state engine: postgresql, reachable (host {engine.get('host')})")
        else:
            lines.append(
                f"state engine: postgresql UNREACHABLE for {engine.get('down_for_s', '?')} s "
                f"({engine.get('reason', '')}); serving from memory, refreshes refused, "
                f"{engine.get('outbox_rows', 0)} ledger rows in the outbox"
            )
        for host in engine.get("hosts", []):
            lines.append(_host_line(host))
    return "\n".join(lines)


def _host_line(host: dict[str, Any]) -> str:
    """One host of a multi-host pool, from its heartbeat."""
    name = f"{host.get('host')}{' (this one)' if host.get('this') else ''}"
    where = f"{host.get('hostname')} pid {host.get('pid')}, {host.get('version')}"
    ago = _duration(float(host.get("seen_s_ago", 0)))
    state = host.get("state")
    if state == "up":
        return f"host {name}: up ({where})"
    if state == "stopped":
        return f"host {name}: stopped {ago} ago ({where})"
    return f"host {name}: GONE, no heartbeat for {ago} ({where})"
