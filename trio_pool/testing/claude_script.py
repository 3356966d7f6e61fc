"""Scripted Claude turns as the real Messages stream (protocols.md §2.7).

``message_start``, then per block ``content_block_start`` … ``content_block_stop`` (one
``ping`` after the first start, as the API sends it):

* reasoning -> a ``thinking`` block: ``thinking_delta``…, then ``signature_delta`` with the
  simulator's own signature over the text (so only what it issued comes back valid);
* function and custom calls -> a ``tool_use`` block: ``input_json_delta``… (a custom
  call's raw input travels as ``{"input": …}``, CPA's mapping);
* message -> a ``text`` block: ``text_delta``…;

then ``message_delta`` (``stop_reason`` ``tool_use`` when a call was made, ``max_tokens``
for an incomplete turn, else ``end_turn``) and ``message_stop``; a failed turn ends with
``event: error`` instead. ``stream: false`` gets the same content as one JSON message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from trio_pool.server.connection import Exchange
from trio_pool.testing import wire
from trio_pool.testing.faults import input_tokens
from trio_pool.testing.turns import (
    CustomToolCall,
    FunctionCall,
    Message,
    Reasoning,
    Turn,
    split,
)

Event = tuple[str, dict[str, Any]]
Signer = Callable[[str], str]
STOP_REASONS = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}


def conversation_of(request: dict[str, Any], session_header: str | None) -> str | None:
    """Claude Code's session: its header, else ``metadata.user_id``'s ``session_id``."""
    if session_header:
        return session_header
    metadata = request.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user_id, str) and user_id.startswith("{"):
        try:
            session = json.loads(user_id).get("session_id")
        except (ValueError, AttributeError):
            return None
        return session if isinstance(session, str) and session else None
    return None


def content_blocks(turn: Turn, base: str, sign: Signer) -> list[dict[str, Any]]:
    """The turn's content blocks as the final message holds them."""
    blocks: list[dict[str, Any]] = []
    for index, item in enumerate(turn.items):
        if isinstance(item, Reasoning):
            text = "\n\n".join(item.summary)
            blocks.append({"type": "thinking", "thinking": text, "signature": sign(text)})
        elif isinstance(item, Message):
            blocks.append({"type": "text", "text": item.text})
        else:
            tool_id = item.call_id or f"toolu_{base}_{index}"
            if isinstance(item, FunctionCall):
                try:
                    arguments = json.loads(item.arguments)
                except ValueError:
                    arguments = {}
            else:
                arguments = {"input": item.input}
            blocks.append(
                {"type": "tool_use", "id": tool_id, "name": item.name, "input": arguments}
            )
    return blocks


def stop_reason(turn: Turn) -> str:
    if any(isinstance(i, FunctionCall | CustomToolCall) for i in turn.items):
        return "tool_use"
    if turn.end == "incomplete":
        return STOP_REASONS.get(turn.incomplete_reason, turn.incomplete_reason)
    return "end_turn"


def usage(turn: Turn, blocks: list[dict[str, Any]], body_size: int) -> dict[str, int]:
    cached = turn.usage.cached_tokens
    n_in = turn.usage.input_tokens or input_tokens(body_size)
    n_out = turn.usage.output_tokens or max(1, len(wire.dumps(blocks)) // 16)
    return {
        "input_tokens": max(0, n_in - cached),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
        "output_tokens": n_out,
    }


def message_object(
    msg_id: str, model: str, content: list[Any], stop: str | None, used: dict[str, int]
) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": model,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": used,
    }


def _deltas(turn: Turn, block: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The block as ``content_block_start`` shows it, and its deltas."""
    kind = block["type"]
    if kind == "thinking":
        pieces = split(block["thinking"], turn.deltas) if block["thinking"] else []
        deltas = [{"type": "thinking_delta", "thinking": p} for p in pieces]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return {"type": "thinking", "thinking": "", "signature": ""}, deltas
    if kind == "tool_use":
        text = json.dumps(block["input"])
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in split(text, turn.deltas)]
        return {**block, "input": {}}, deltas
    deltas = [{"type": "text_delta", "text": p} for p in split(block["text"], turn.deltas)]
    return {"type": "text", "text": ""}, deltas


def turn_events(
    turn: Turn, *, msg_id: str, model: str, body_size: int, sign: Signer
) -> list[Event]:
    """Every event of ``turn`` in order (before ``drop_first_events`` is applied)."""
    blocks = content_blocks(turn, msg_id.removeprefix("msg_"), sign)
    used = usage(turn, blocks, body_size)
    start = message_object(msg_id, model, [], None, {**used, "output_tokens": 1})
    events: list[Event] = [("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(blocks):
        shown, deltas = _deltas(turn, block)
        events.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": shown},
            )
        )
        if index == 0:
            events.append(("ping", {"type": "ping"}))
        for delta in deltas:
            payload = {"type": "content_block_delta", "index": index, "delta": delta}
            events.append(("content_block_delta", payload))
        events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    if turn.end == "failed":
        error = {"type": "overloaded_error", "message": "Overloaded", **turn.error}
        events.append(("error", {"type": "error", "error": error}))
        return events
    delta = {"stop_reason": stop_reason(turn), "stop_sequence": None}
    final_usage = {"output_tokens": used["output_tokens"]}
    events.append(
        ("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage})
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


async def reply(
    ex: Exchange,
    turn: Turn,
    *,
    request: dict[str, Any],
    headers: list[tuple[str, str]],
    msg_id: str,
    model: str,
    body_size: int,
    sign: Signer,
) -> None:
    """Answer one ``/v1/messages`` request with ``turn`` (not an HTTP-error turn)."""
    if not request.get("stream"):
        blocks = content_blocks(turn, msg_id.removeprefix("msg_"), sign)
        if turn.end == "failed":
            error = {"type": "overloaded_error", "message": "Overloaded", **turn.error}
            await wire.respond_json(ex, 529, {"type": "error", "error": error}, headers)
            return
        message = message_object(
            msg_id, model, blocks, stop_reason(turn), usage(turn, blocks, body_size)
        )
        await wire.respond_json(ex, 200, message, headers)
        return
    events = turn_events(turn, msg_id=msg_id, model=model, body_size=body_size, sign=sign)
    chunks = [wire.sse(name, wire.dumps(data)) for name, data in events[turn.drop_first_events :]]
    await ex.start_response(200, [*wire.SSE_HEADERS, *headers])
    await ex.send_chunks(chunks)
    await ex.end()
