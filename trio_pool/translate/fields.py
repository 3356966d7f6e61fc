"""Tolerant readers for client and provider JSON.

Every reader returns a default on a wrong shape instead of raising: the translators must
never crash on a malformed event or an unexpected field type.
"""

from __future__ import annotations

import json
import math
from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def as_str(value: Any, default: str = "") -> str:
    return value if isinstance(value, str) else default


def as_int(value: Any, default: int = 0) -> int:
    """A JSON number as an int (bools and non-finite floats are not numbers here)."""
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    return default


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...`` or None when any step is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def dumps(value: Any) -> str:
    """The one JSON encoding used for everything we emit: compact, keys in insertion order.

    Insertion order is deterministic because every dict we emit is built in code order;
    sorting would reorder the client's own schemas for no gain.
    """
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads_object(text: str) -> dict[str, Any] | None:
    """``text`` as a JSON object, or None (tool arguments, wrapped custom-tool input)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def text_of(content: Any, *types: str) -> str:
    """The concatenated ``text`` of a string or a list of typed parts (any type if none given)."""
    if isinstance(content, str):
        return content
    pieces = []
    for part in as_list(content):
        if isinstance(part, dict) and (not types or part.get("type") in types):
            pieces.append(as_str(part.get("text")))
    return "".join(pieces)


def as_bool_true(value: Any) -> bool:
    """True only for the JSON value ``true``."""
    return value is True
