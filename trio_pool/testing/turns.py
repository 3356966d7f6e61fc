"""Scripted model turns for the simulated Codex and Claude (translation.md §9), as values.

A test or the e2e harness says what the "model" answers next: reasoning or thinking, tool
calls, text, and how the turn ends, or a failure instead of a turn. The simulators turn a
:class:`Turn` into the provider's real event sequence (testing/codex_script.py,
testing/claude_script.py); :class:`~trio_pool.testing.scripts.TurnScripts` holds the queues.

The same turn can be written as JSON (the file ``trio-pool demo --sim-script`` reads)::

    {"match": "run echo hi",
     "items": [{"type": "reasoning", "id": "rs_1", "encrypted_content": "E1",
                "summary": ["plan"]},
               {"type": "function_call", "name": "Bash", "call_id": "call_1",
                "arguments": {"command": "echo hi"}}]}
    {"items": [{"type": "message", "text": "DONE"}],
     "usage": {"input_tokens": 100, "cached_tokens": 80, "output_tokens": 5}}
    {"end": "failed", "error": {"code": "rate_limit_exceeded",
                                "message": "Rate limit reached. Please try again in 1.5s."}}
    {"http_error": {"status": 429, "type": "usage_limit_reached", "resets_in_seconds": 30}}
    {"drop_first_events": 2, "items": [{"type": "message", "text": "hi"}]}

Claude reads ``reasoning`` as a thinking block (``summary`` joined is its text), both call
kinds as ``tool_use`` and ``message`` as a text block.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import attrs

End = Literal["completed", "incomplete", "failed"]
USAGE_LIMIT_MESSAGE = "The usage limit has been reached"


class ScriptError(ValueError):
    """A scripted turn that cannot be played (bad JSON shape, unknown item type)."""


@attrs.frozen
class Reasoning:
    """Codex reasoning (its ``encrypted_content`` is issued by the simulated account) or a
    Claude thinking block (signed by the simulator). None: the simulator makes one up."""

    id: str | None = None  # None: rs_<response>_<n>
    encrypted_content: str | None = None
    summary: tuple[str, ...] = ()


@attrs.frozen
class FunctionCall:
    name: str
    arguments: str = "{}"  # the JSON text, as Codex streams it
    call_id: str | None = None  # None: call_sim_<n>
    id: str | None = None  # the item id; None: fc_sim_<n>


@attrs.frozen
class CustomToolCall:
    """Codex's freeform tool call (``apply_patch``): raw text input, no JSON."""

    name: str
    input: str = ""
    call_id: str | None = None
    id: str | None = None


@attrs.frozen
class Message:
    text: str
    id: str | None = None


Item = Reasoning | FunctionCall | CustomToolCall | Message


@attrs.frozen
class HttpError:
    """An HTTP error answer instead of a stream: Codex ``{"error":{type,…}}``, Claude
    ``{"type":"error","error":{type,message}}``; ``resets_in_seconds`` also gives the
    Codex ``resets_at`` and a ``retry-after`` header."""

    status: int = 429
    type: str = "usage_limit_reached"
    message: str = USAGE_LIMIT_MESSAGE
    resets_in_seconds: int | None = None


@attrs.frozen
class Usage:
    input_tokens: int = 0  # 0: counted from the request body
    cached_tokens: int = 0
    output_tokens: int = 0  # 0: counted from the turn's text
    reasoning_tokens: int = 0


@attrs.frozen
class Turn:
    """One scripted answer."""

    items: tuple[Item, ...] = ()
    end: End = "completed"
    incomplete_reason: str = "max_output_tokens"
    # For end="failed": Codex response.error, Claude's mid-stream error event.
    error: Mapping[str, str] = attrs.field(factory=dict)
    http_error: HttpError | None = None
    # Leave out the first N events of the stream (a broken upstream or proxy).
    drop_first_events: int = 0
    # Stream the arguments of consecutive function calls interleaved (A, B, A, B…).
    interleave_calls: bool = False
    deltas: int = 2  # delta events per text, summary, arguments or input
    usage: Usage = attrs.field(factory=Usage)
    # Only a request whose body contains this text takes the turn (None: any request).
    match: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.deltas < 1:
            raise ScriptError("deltas must be at least 1")
        if self.drop_first_events < 0:
            raise ScriptError("drop_first_events must not be negative")


def split(text: str, pieces: int) -> list[str]:
    """``text`` in at most ``pieces`` non-empty parts (one empty part for empty text)."""
    if not text:
        return [""]
    pieces = min(pieces, len(text))
    size, extra = divmod(len(text), pieces)
    out, start = [], 0
    for i in range(pieces):
        end = start + size + (1 if i < extra else 0)
        out.append(text[start:end])
        start = end
    return out


# -- JSON form ------------------------------------------------------------------------------


def _str(obj: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    value = obj.get(key, default)
    if value is not None and not isinstance(value, str):
        raise ScriptError(f"{key!r} must be a string, not {type(value).__name__}")
    return value


def _int(obj: Mapping[str, Any], key: str, default: int) -> int:
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScriptError(f"{key!r} must be an integer")
    return value


def item_from_json(obj: Any) -> Item:
    if not isinstance(obj, Mapping):
        raise ScriptError("a scripted item must be an object")
    kind = obj.get("type")
    if kind in ("reasoning", "thinking"):
        summary = obj.get("summary", obj.get("thinking", ()))
        parts = (summary,) if isinstance(summary, str) else tuple(summary)
        if not all(isinstance(p, str) for p in parts):
            raise ScriptError("'summary' must be a string or a list of strings")
        return Reasoning(
            id=_str(obj, "id"),
            encrypted_content=_str(obj, "encrypted_content", _str(obj, "signature")),
            summary=parts,
        )
    if kind in ("function_call", "tool_use"):
        arguments = obj.get("arguments", obj.get("input", {}))
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        name = _str(obj, "name")
        if not name:
            raise ScriptError("a function_call needs a 'name'")
        call_id = _str(obj, "call_id", _str(obj, "id") if kind == "tool_use" else None)
        item_id = _str(obj, "id") if kind == "function_call" else None
        return FunctionCall(name, text, call_id, item_id)
    if kind == "custom_tool_call":
        name = _str(obj, "name")
        if not name:
            raise ScriptError("a custom_tool_call needs a 'name'")
        return CustomToolCall(name, _str(obj, "input", "") or "", _str(obj, "call_id"), None)
    if kind in ("message", "text"):
        return Message(_str(obj, "text", "") or "", _str(obj, "id"))
    raise ScriptError(f"unknown scripted item type {kind!r}")


def turn_from_json(obj: Any) -> Turn:
    """A :class:`Turn` from its JSON form (module docstring); raises ScriptError."""
    if not isinstance(obj, Mapping):
        raise ScriptError("a scripted turn must be an object")
    known = {
        "items", "end", "incomplete_reason", "error", "http_error", "drop_first_events",
        "interleave_calls", "deltas", "usage", "match",
    }  # fmt: skip
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ScriptError(f"unknown keys in a scripted turn: {', '.join(unknown)}")
    items = obj.get("items", [])
    if not isinstance(items, Sequence) or isinstance(items, str):
        raise ScriptError("'items' must be a list")
    end = obj.get("end", "completed")
    if end not in ("completed", "incomplete", "failed"):
        raise ScriptError(f"'end' must be completed, incomplete or failed, not {end!r}")
    error = obj.get("error", {})
    if not isinstance(error, Mapping) or not all(isinstance(v, str) for v in error.values()):
        raise ScriptError("'error' must be an object of strings")
    http = obj.get("http_error")
    http_error = None
    if http is not None:
        if not isinstance(http, Mapping):
            raise ScriptError("'http_error' must be an object")
        resets = http.get("resets_in_seconds")
        if resets is not None and (isinstance(resets, bool) or not isinstance(resets, int)):
            raise ScriptError("'resets_in_seconds' must be an integer")
        http_error = HttpError(
            status=_int(http, "status", 429),
            type=_str(http, "type", "usage_limit_reached") or "usage_limit_reached",
            message=_str(http, "message", USAGE_LIMIT_MESSAGE) or "",
            resets_in_seconds=resets,
        )
    usage = obj.get("usage", {})
    if not isinstance(usage, Mapping) or set(usage) - set(attrs.fields_dict(Usage)):
        raise ScriptError(
            f"'usage' must be an object with keys {', '.join(attrs.fields_dict(Usage))}"
        )
    return Turn(
        items=tuple(item_from_json(i) for i in items),
        end=end,
        incomplete_reason=_str(obj, "incomplete_reason", "max_output_tokens") or "",
        error=dict(error),
        http_error=http_error,
        drop_first_events=_int(obj, "drop_first_events", 0),
        interleave_calls=bool(obj.get("interleave_calls", False)),
        deltas=_int(obj, "deltas", 2),
        usage=Usage(**{k: _int(usage, k, 0) for k in attrs.fields_dict(Usage) if k in usage}),
        match=_str(obj, "match"),
    )
