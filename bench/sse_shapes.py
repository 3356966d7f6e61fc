"""The fake upstream's answers, encoded once per reply shape (pure: no sockets, no clock).

A Claude ``/v1/messages`` stream is message_start, content_block_start, ping, ``events`` text
deltas of ``event_bytes`` text each, content_block_stop, message_delta and message_stop.
``Replies.stream`` holds it as the pieces the upstream writes one at a time: the response
head, then each event in its own HTTP chunk, then the last-chunk marker.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import attrs

MODEL = "claude-sonnet-4-5"
REQUEST_ID = "req_bench_0001"
MESSAGE_ID = "msg_bench_0001"
LAST_CHUNK = b"0\r\n\r\n"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}


@attrs.frozen
class Shape:
    """How the replies look; the benchmark switches it between workloads."""

    events: int = 3  # text delta events in a stream
    event_bytes: int = 12  # text bytes per delta
    small_text: str = "Hello from the fast fake upstream."

    def __attrs_post_init__(self) -> None:
        if self.events < 1 or self.event_bytes < 1:
            raise ValueError("events and event_bytes must be at least 1")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def rate_limit_headers(now: float) -> list[tuple[str, str]]:
    """``anthropic-ratelimit-unified-*`` as the real API sends them: far from any limit."""
    prefix = "anthropic-ratelimit-unified-"
    five_h, seven_d = int(now + 5 * 3600), int(now + 7 * 86400)
    return [
        (prefix + "status", "allowed"),
        (prefix + "5h-utilization", "0.01"),
        (prefix + "5h-reset", str(five_h)),
        (prefix + "5h-status", "allowed"),
        (prefix + "7d-utilization", "0.01"),
        (prefix + "7d-reset", str(seven_d)),
        (prefix + "7d-status", "allowed"),
        (prefix + "reset", str(five_h)),
        (prefix + "representative-claim", "five_hour"),
        (prefix + "fallback-percentage", "0.5"),
        (prefix + "overage-status", "rejected"),
        (prefix + "overage-disabled-reason", "org_level_disabled"),
    ]


def response_head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def json_response(
    status: int, obj: Any, headers: list[tuple[str, str]] | None = None, *, close: bool = False
) -> bytes:
    body = dumps(obj)
    out = [("content-type", "application/json"), *(headers or [])]
    out.append(("content-length", str(len(body))))
    if close:
        out.append(("connection", "close"))
    return response_head(status, out) + body


def error_response(
    status: int, message: str, kind: str = "authentication_error", *, close: bool = False
) -> bytes:
    """An Anthropic-shaped error."""
    if status not in (401, 404):
        kind = "invalid_request_error"
    error = {"type": "error", "error": {"type": kind, "message": message}}
    return json_response(status, {**error, "request_id": REQUEST_ID}, close=close)


def chunk(data: bytes) -> bytes:
    """One HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse_event(kind: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + dumps({"type": kind, **payload}) + b"\n\n"


def _message(content: list[Any], stop: str | None, output_tokens: int) -> dict[str, Any]:
    return {
        "id": MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 12,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        },
    }


def stream_events(shape: Shape) -> list[bytes]:
    """The SSE events of one streamed reply, each complete with its blank line."""
    piece = ("abcdefghijklmnopqrstuvwxyz" * (shape.event_bytes // 26 + 1))[: shape.event_bytes]
    tokens = max(1, shape.events * shape.event_bytes // 4)
    deltas = [
        sse_event(
            "content_block_delta",
            {"index": 0, "delta": {"type": "text_delta", "text": f"{i}:{piece}"[: len(piece)]}},
        )
        for i in range(shape.events)
    ]
    return [
        sse_event("message_start", {"message": _message([], None, 1)}),
        sse_event(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        ),
        sse_event("ping", {}),
        *deltas,
        sse_event("content_block_stop", {"index": 0}),
        sse_event(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": tokens},
            },
        ),
        sse_event("message_stop", {}),
    ]


def usage_body(now: float) -> dict[str, Any]:
    """``GET /api/oauth/usage``: utilization in percent, ISO reset times."""

    def window(after_s: float) -> dict[str, Any]:
        resets = datetime.fromtimestamp(now + after_s, tz=UTC).isoformat()
        return {"utilization": 1.0, "resets_at": resets}

    return {
        "five_hour": window(5 * 3600),
        "seven_day": window(7 * 86400),
        "seven_day_oauth_apps": None,
        "seven_day_opus": None,
        "seven_day_sonnet": None,
        "extra_usage": {
            "is_enabled": False,
            "monthly_limit": None,
            "used_credits": None,
            "utilization": None,
        },
    }


class Replies:
    """Every answer for one shape, as bytes ready to write."""

    def __init__(self, shape: Shape, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.shape = shape
        common = [("request-id", REQUEST_ID), *rate_limit_headers(now)]
        text = [{"type": "text", "text": shape.small_text}]
        small = _message(text, "end_turn", max(1, len(shape.small_text) // 4))
        self.small = json_response(200, small, common)
        sse_head = [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            *common,
            ("transfer-encoding", "chunked"),
        ]
        self.stream: list[bytes] = [response_head(200, sse_head)]
        self.stream += [chunk(event) for event in stream_events(shape)]
        self.stream.append(LAST_CHUNK)
        self.usage = json_response(200, usage_body(now))
