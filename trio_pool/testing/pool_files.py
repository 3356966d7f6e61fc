"""Simulated accounts as the real CLIs' credential files, and the ``trio-pool demo`` accounts.

``write_pool`` writes ``<pool_dir>/<provider>/<name>.json`` (mode 0600) in each CLI's own
format: Codex ``auth.json``, Claude ``.credentials.json``, Gemini ``oauth_creds.json``.
It does blocking file I/O: from trio, call it through ``trio.to_thread.run_sync``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from trio_pool.testing import issue
from trio_pool.testing.accounts import Provider, SimAccount, SimWindow
from trio_pool.testing.faults import SimConfig
from trio_pool.testing.gemini import INDIVIDUAL_TIERS
from trio_pool.testing.state import SimState

CLAUDE_TIERS = {
    "max": "default_claude_max_20x",
    "pro": "default_claude_ai",
    "team": "default_claude_team",
}


def credential_file(account: SimAccount, now: float) -> dict[str, Any]:
    """The account in its CLI's credential-file format."""
    if account.provider == "codex":
        last_refresh = datetime.fromtimestamp(now, tz=UTC).isoformat().replace("+00:00", "Z")
        return {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": issue.codex_id_token(account, now),
                "access_token": account.access_token,
                "refresh_token": account.refresh_token,
                "account_id": account.account_id,
            },
            "last_refresh": last_refresh,
        }
    if account.provider == "claude":
        return {
            "claudeAiOauth": {
                "accessToken": account.access_token,
                "refreshToken": account.refresh_token,
                "expiresAt": int(account.expires_at * 1000),
                "scopes": list(issue.CLAUDE_SCOPES),
                "subscriptionType": account.plan,
                "rateLimitTier": CLAUDE_TIERS.get(account.plan, f"default_claude_{account.plan}"),
            }
        }
    return {
        "access_token": account.access_token,
        "refresh_token": account.refresh_token,
        "scope": issue.GEMINI_SCOPE,
        "token_type": "Bearer",
        "id_token": issue.google_id_token(account, now),
        "expiry_date": int(account.expires_at * 1000),
        # Standard/Enterprise licences bill the user's own Google Cloud project, which the
        # pool file names (the CLI takes it from GOOGLE_CLOUD_PROJECT).
        **({"project_id": account.project} if account.plan not in INDIVIDUAL_TIERS else {}),
    }


def write_pool(pool_dir: Path, state: SimState, *, now: float | None = None) -> list[Path]:
    """Write every account of ``state`` into ``pool_dir``; returns the files written."""
    when = state.now() if now is None else now
    written = []
    for account in state.accounts.values():
        directory = pool_dir / account.provider
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{account.name}.json"
        data = json.dumps(credential_file(account, when), indent=2).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
            os.write(fd, data)
        finally:
            os.close(fd)
        written.append(path)
    return written


def _windows(
    short_s: float, short_cap: float, long_s: float, long_cap: float, used: float, now: float
) -> list[SimWindow]:
    """A short and a long window, both ``used`` (0..1) full, resetting part-way through."""
    return [
        SimWindow("short", short_s, short_cap, used * short_cap, now + short_s * (1 - used / 2)),
        SimWindow("long", long_s, long_cap, used * long_cap, now + long_s * (1 - used / 3)),
    ]


def demo_state(now: float, providers: Collection[str] | None = None) -> SimState:
    """Three accounts per provider with different plans, window sizes and usage levels;
    ``providers``: only those providers' accounts (a Codex-only pool, say)."""
    hour, day, week = 3600.0, 86400.0, 7 * 86400.0
    specs: list[tuple[Provider, str, str, list[SimWindow]]] = [
        ("codex", "ada", "plus", _windows(5 * hour, 40, week, 400, 0.1, now)),
        ("codex", "bob", "pro", _windows(5 * hour, 200, week, 2000, 0.55, now)),
        ("codex", "cyd", "plus", _windows(5 * hour, 20, week, 200, 0.9, now)),
        ("claude", "ada", "max", _windows(5 * hour, 100, week, 1000, 0.2, now)),
        ("claude", "bob", "pro", _windows(5 * hour, 30, week, 300, 0.6, now)),
        ("claude", "cyd", "max", _windows(5 * hour, 100, week, 1000, 0.95, now)),
        ("gemini", "ada", "standard-tier", _windows(60.0, 60, day, 1000, 0.05, now)),
        ("gemini", "bob", "enterprise-tier", _windows(60.0, 120, day, 1500, 0.4, now)),
        ("gemini", "cyd", "standard-tier", _windows(60.0, 10, day, 100, 0.85, now)),
    ]
    names: dict[Provider, tuple[str, str]] = {
        "codex": ("5h", "7d"),
        "claude": ("5h", "7d"),
        "gemini": ("minute", "daily"),
    }
    config = SimConfig(deltas=12, event_delay_s=0.03)
    state = SimState(config=config)
    for provider, name, plan, windows in specs:
        if providers is not None and provider not in providers:
            continue
        for window, label in zip(windows, names[provider], strict=True):
            window.name = label
        # Each reply names its account, so a demo user sees the pool at work.
        text = f"Hello from the trio-pool demo: this reply came from {provider}/{name}."
        account_config = SimConfig(
            text=text, deltas=config.deltas, event_delay_s=config.event_delay_s
        )
        state.add(
            issue.new_account(
                provider, name, now=now, plan=plan, windows=windows, config=account_config
            )
        )
    return state
