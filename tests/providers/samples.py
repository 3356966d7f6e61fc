"""Wire samples for the provider tests, built from the examples in protocols.md."""

from __future__ import annotations

import base64
import json
from typing import Any

from trio_pool.providers.base import Credentials, StreamEvent, StreamObserver, TokenUsage
from trio_pool.server.messages import RequestHead

NOW = 1_800_000_000.0
PLANTED = "sk-ant-oat01-PLANTEDsecretTOKENvalue0123456789"


def make_jwt(claims: dict[str, Any]) -> str:
    """An unsigned JWT with ``claims`` (the CLIs never verify signatures)."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


def head(method: str, target: str, *headers: tuple[str, str]) -> RequestHead:
    return RequestHead(method, target, tuple((k.lower(), v) for k, v in headers))


def sse(*events: tuple[str | None, dict[str, Any]], newline: str = "\n") -> bytes:
    lines = []
    for name, data in events:
        if name is not None:
            lines.append(f"event: {name}")
        lines.append(f"data: {json.dumps(data)}")
        lines.append("")
    return (newline.join(lines) + newline).encode()


CODEX_STREAM = sse(
    (
        "response.created",
        {
            "type": "response.created",
            "response": {
                "id": "resp_1",
                "object": "response",
                "status": "in_progress",
                "model": "gpt-5",
                "output": [],
            },
        },
    ),
    (
        "response.output_item.added",
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "in_progress",
                "content": [],
            },
        },
    ),
    (
        "response.output_text.delta",
        {
            "type": "response.output_text.delta",
            "item_id": "msg_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "Hi",
        },
    ),
    (
        "response.output_item.done",
        {
            "type": "response.output_item.done",
            "output_index": 0,
            "item": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Hi", "annotations": []}],
            },
        },
    ),
    (
        "response.completed",
        {
            "type": "response.completed",
            "response": {
                "id": "resp_1",
                "status": "completed",
                "output": [],
                "usage": {
                    "input_tokens": 10,
                    "input_tokens_details": {"cached_tokens": 4},
                    "output_tokens": 7,
                    "output_tokens_details": {"reasoning_tokens": 3},
                    "total_tokens": 17,
                },
            },
        },
    ),
)
CODEX_USAGE = TokenUsage(input=10, cached=4, output=7, reasoning=3)

CLAUDE_STREAM = sse(
    (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": [],
                "model": "claude-x",
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {
                    "input_tokens": 25,
                    "cache_creation_input_tokens": 5,
                    "cache_read_input_tokens": 10,
                    "output_tokens": 1,
                },
            },
        },
    ),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "Hello"},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 15},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
)
CLAUDE_USAGE = TokenUsage(input=40, cached=10, output=15)

GEMINI_STREAM = sse(
    (
        None,
        {
            "response": {
                "candidates": [{"content": {"role": "model", "parts": [{"text": "Hello"}]}}],
                "modelVersion": "gemini-2.5-pro",
            },
            "traceId": "t1",
        },
    ),
    (
        None,
        {
            "response": {
                "candidates": [
                    {
                        "content": {"role": "model", "parts": [{"text": " world"}]},
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": 10,
                    "candidatesTokenCount": 2,
                    "totalTokenCount": 17,
                    "thoughtsTokenCount": 5,
                    "cachedContentTokenCount": 6,
                },
                "modelVersion": "gemini-2.5-pro",
            },
            "traceId": "t1",
        },
    ),
    newline="\r\n",
)
GEMINI_USAGE = TokenUsage(input=10, cached=6, output=7, reasoning=5)

SSE_HEADERS = (("content-type", "text/event-stream"),)
JSON_HEADERS = (("content-type", "application/json"),)


def run_observer(
    observer: StreamObserver, chunks: list[bytes]
) -> tuple[TokenUsage | None, bool, list[StreamEvent]]:
    """Feed ``chunks``; the last usage, whether completion was seen, and every event."""
    events = [e for e in (observer.feed(c) for c in chunks) if e is not None]
    final = observer.finish()
    if final is not None:
        events.append(final)
    usage = None
    for event in events:
        usage = event.usage or usage
    return usage, any(e.complete for e in events), events


def credentials(**overrides: Any) -> Credentials:
    values: dict[str, Any] = {
        "access_token": "ACCESS-of-the-account",
        "refresh_token": "REFRESH-of-the-account",
        "account_id": "acct-pool-1",
        "project": "pool-project",
    }
    values.update(overrides)
    return Credentials(**values)
