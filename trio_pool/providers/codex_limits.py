"""Codex's quota windows and limit families (protocols.md §1.6, real-services.md §1).

Codex meters the account's own limit (family "codex", headers ``x-codex-primary-*``) and,
apart from it, extra families that each limit one model (``x-codex-bengalfox-*`` with
``x-codex-bengalfox-limit-name: GPT-5.3-Codex-Spark``; ``metered_limit_name`` in WebSocket
``codex.rate_limits``; ``additional_rate_limits`` in ``wham/usage``). An extra family's
windows are model windows: they never overwrite or gate the account's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trio_pool.providers.base import QuotaWindow
from trio_pool.providers.wire import as_float, clamp_fraction


def window_name(minutes: float | None, slot: str) -> str:
    """Codex windows by their length, not their slot: some plans report weekly as primary."""
    if minutes is None:
        return slot
    if 240 <= minutes <= 360:
        return "5h"
    if 8640 <= minutes <= 11520:
        return "weekly"
    return f"{minutes:g}m"


def window(
    slot: str,
    used_percent: Any,
    minutes: float | None,
    reset_at: float | None,
    family: str | None = None,
) -> QuotaWindow | None:
    """One window from Codex's numbers (used in percent 0-100, length in minutes).

    ``family``: the limit family's model name for windows of an extra family (see
    ``family_scope``); they are named after it, so they never overwrite the main windows.
    """
    used = as_float(used_percent)
    if used is None:
        return None
    window_s = minutes * 60 if minutes is not None and minutes > 0 else None
    name = window_name(minutes, slot)
    if family is not None:
        name = f"{family} {name}"
    return QuotaWindow(name, clamp_fraction(used / 100), window_s, reset_at, family)


MAIN_FAMILY = "codex"


def family_scope(limit_id: str | None, limit_name: str | None) -> str | None:
    """The model scope of a Codex limit family; None for the main ("codex") family.

    Codex keys extra families by limit id (``x-codex-bengalfox-*``, ``metered_limit_name``,
    ``additional_rate_limits[].metered_feature``) and shows each under its limit name, which
    names the model it covers: "GPT-5.3-Codex-Spark" for family "codex_bengalfox" in live
    captures (micw/codex-wrapper-advanced fixtures), matched to the model id
    "gpt-5.3-codex-spark" case-insensitively. With no limit name the id is kept as the
    scope, which matches no model (the numbers are shown, never gate), and a 429 of that
    family cools the model of the request that got it.
    """
    ident = (limit_id or "").strip().lower().replace("-", "_")
    if not ident or ident == MAIN_FAMILY:
        return None
    return (limit_name or "").strip() or ident


def header_families(fields: Mapping[str, str]) -> list[str]:
    """The limit families in a response head: "codex" first, then every other
    ``x-<id>-primary-used-percent`` (ids as in the header, lower case)."""
    suffix = "-primary-used-percent"
    found = sorted(
        key[2 : -len(suffix)]
        for key in fields
        if key.startswith("x-") and key.endswith(suffix) and key != "x-codex" + suffix
    )
    return [MAIN_FAMILY, *found]


def limit_key(limit_id: str) -> str:
    """A limit id as Codex compares them: lower case, "_" for "-" ("codex_bengalfox")."""
    return limit_id.strip().lower().replace("-", "_")


def family_names(fields: Mapping[str, str]) -> dict[str, str]:
    """Limit id -> limit name of every extra family in a response head
    (``x-codex-bengalfox-limit-name: GPT-5.3-Codex-Spark`` -> codex_bengalfox)."""
    suffix = "-limit-name"
    return {
        limit_key(key[2 : -len(suffix)]): value.strip()
        for key, value in fields.items()
        if key.startswith("x-") and key.endswith(suffix) and value.strip()
    }


def active_family(fields: Mapping[str, str]) -> str | None:
    """The extra family (its header id, "codex-bengalfox") that ``x-codex-active-limit``
    names, or None when the request counted against the account's own limit.

    The backend sends the header on every answer. For the account's own limit its value
    names no family of the head ("premium" in live captures, micw/codex-wrapper-advanced
    fixtures; "codex" in openai/codex's tests); for a model family it is that family's id
    ("codex_bengalfox"), and the family's own ``x-<id>-*`` headers come with it. So a value
    counts as a family only when the head carries that family.
    """
    active = (fields.get("x-codex-active-limit") or "").strip().lower().replace("_", "-")
    if not active or limit_key(active) == MAIN_FAMILY:
        return None
    prefix = f"x-{active}-"
    present = any(
        prefix + suffix in fields
        for suffix in ("primary-used-percent", "secondary-used-percent", "limit-name")
    )
    return active if present else None
