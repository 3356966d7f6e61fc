"""The simulated Codex's limits: the account's own and the extra families of some models.

A Codex account has its own limit (the ``SimWindow``s without a model) and, apart from it,
extra limit families that each meter one model (``SimWindow(model=..., limit_id=...)``, a
5-hour and a weekly window like the real "GPT-5.3-Codex-Spark" family "codex_bengalfox").
A request for such a model counts against its family only; any other request against the
account's own limit. Every answer reports them the way the backend does:

* headers: ``x-codex-active-limit`` names the limit the request counted against ("premium"
  for the account's own, else the family id); ``x-codex-{primary,secondary}-*`` carry the
  numbers of *that* limit (on a family turn a copy of the family's); every family follows
  as ``x-<id>-{primary,secondary}-*`` plus ``x-<id>-limit-name``. This is the live capture
  in micw/codex-wrapper-advanced (fixtures/headers-prolite-{sol,spark}.txt) and what
  openai/codex's account-pool tests send on a Spark 429; codex-api ``rate_limits.rs``
  reads the same names.
* WebSocket ``codex.rate_limits``: one event for the limit the turn counts against, a
  family's with ``metered_limit_name: <id>`` and no limit name (rate_limits.rs
  ``parse_rate_limit_event``; CLIProxyAPI's test event has the same shape).
* ``wham/usage``: ``additional_rate_limits[]`` of ``{limit_name, metered_feature,
  rate_limit}`` (backend-client ``rate_limit_snapshots_from_payload``; the same capture).

UNVERIFIED: that a family's use leaves the account's own limit untouched (announced as a
separate limit; no capture shows both moving), that "premium" is the value on every plan
(seen on Free, Plus and Pro Lite), and whether the real WebSocket handshake carries the
``x-codex-*`` headers at all.
"""

from __future__ import annotations

import re
from typing import Any

from trio_pool.testing.accounts import SimAccount, SimWindow

# x-codex-active-limit for a request counted against the account's own limit (live capture).
MAIN_ACTIVE_LIMIT = "premium"
SLOTS = ("primary", "secondary")


def num(value: float) -> str:
    return f"{round(value, 3):g}"


def family_id(window: SimWindow) -> str:
    """A model window's limit id: its own, else codex_<model> ("codex_gpt_5_3_codex_spark")."""
    if window.limit_id:
        return window.limit_id
    return "codex_" + re.sub(r"[^a-z0-9]+", "_", (window.model or "").lower()).strip("_")


def limit_name(model: str) -> str:
    """The family's display name as the backend sends it: "GPT-5.3-Codex-Spark"."""
    words = model.split("-")
    return "-".join(w.upper() if w == "gpt" else w[:1].upper() + w[1:] for w in words)


def main_windows(account: SimAccount) -> list[SimWindow]:
    return [w for w in account.windows if w.model is None]


def families(account: SimAccount) -> dict[str, list[SimWindow]]:
    """The account's extra families by limit id, each with its windows (primary first)."""
    found: dict[str, list[SimWindow]] = {}
    for window in account.windows:
        if window.model is not None:
            found.setdefault(family_id(window), []).append(window)
    return found


def charged(account: SimAccount, model: str | None) -> tuple[str | None, list[SimWindow]]:
    """The limit a request for ``model`` counts against: (its family id, the family's
    windows), or (None, the account's own windows)."""
    for limit_id, windows in families(account).items():
        if windows[0].limits(model):
            return limit_id, windows
    return None, main_windows(account)


def charge(account: SimAccount, units: float, now: float, model: str | None) -> None:
    account.roll(now)
    for window in charged(account, model)[1]:
        window.used += units


def blocking(account: SimAccount, now: float, model: str | None) -> SimWindow | None:
    """The spent window of the limit ``model`` counts against that stays spent longest."""
    account.roll(now)
    full = [w for w in charged(account, model)[1] if w.full]
    return max(full, key=lambda w: w.reset_at(now)) if full else None


def _window_headers(prefix: str, windows: list[SimWindow], now: float) -> list[tuple[str, str]]:
    headers = []
    for slot, window in zip(SLOTS, windows, strict=False):
        at = f"{prefix}{slot}-"
        headers += [
            (at + "used-percent", num(window.fraction * 100)),
            (at + "window-minutes", str(int(window.length_s // 60))),
            (at + "reset-at", str(int(window.reset_at(now)))),
            (at + "reset-after-seconds", str(int(window.reset_after_s(now)))),
        ]
    return headers


def rate_limit_headers(
    account: SimAccount, now: float, model: str | None = None
) -> list[tuple[str, str]]:
    """The ``x-codex-*`` headers of an answer to a request for ``model`` (see above)."""
    account.roll(now)
    active, windows = charged(account, model)
    headers = [
        ("x-codex-plan-type", account.plan),
        ("x-codex-active-limit", active or MAIN_ACTIVE_LIMIT),
        *_window_headers("x-codex-", windows[:2], now),
    ]
    for limit_id, family in families(account).items():
        prefix = "x-" + limit_id.replace("_", "-") + "-"
        headers.append((prefix + "limit-name", limit_name(family[0].model or limit_id)))
        headers += _window_headers(prefix, family[:2], now)
    return headers


def rate_limits_event(account: SimAccount, now: float, model: str | None = None) -> dict[str, Any]:
    """The WebSocket ``codex.rate_limits`` event before a turn for ``model``."""
    account.roll(now)
    active, windows = charged(account, model)
    slots = {
        slot: {
            "used_percent": round(window.fraction * 100, 3),
            "window_minutes": int(window.length_s // 60),
            "reset_at": int(window.reset_at(now)),
        }
        for slot, window in zip(SLOTS, windows, strict=False)
    }
    event: dict[str, Any] = {
        "type": "codex.rate_limits",
        "plan_type": account.plan,
        "rate_limits": slots,
    }
    if active is not None:
        event["metered_limit_name"] = active
    return event


def _usage_window(window: SimWindow, now: float) -> dict[str, Any]:
    return {
        "used_percent": round(window.fraction * 100),
        "limit_window_seconds": int(window.length_s),
        "reset_after_seconds": int(window.reset_after_s(now)),
        "reset_at": int(window.reset_at(now)),
    }


def _usage_limit(windows: list[SimWindow], now: float) -> dict[str, Any]:
    reached = any(w.full for w in windows)
    shown = [_usage_window(w, now) for w in windows[:2]]
    return {
        "allowed": not reached,
        "limit_reached": reached,
        "primary_window": shown[0] if shown else None,
        "secondary_window": shown[1] if len(shown) > 1 else None,
    }


def usage_poll_body(account: SimAccount, now: float) -> dict[str, Any]:
    """The ``wham/usage`` answer (protocols.md §1.6), extra families included."""
    account.roll(now)
    extras = [
        {
            "limit_name": limit_name(windows[0].model or limit_id),
            "metered_feature": limit_id,
            "rate_limit": _usage_limit(windows, now),
        }
        for limit_id, windows in families(account).items()
    ]
    return {
        "plan_type": account.plan,
        "rate_limit": _usage_limit(main_windows(account), now),
        "credits": {"has_credits": False, "unlimited": False, "balance": "0"},
        "additional_rate_limits": extras,
    }
