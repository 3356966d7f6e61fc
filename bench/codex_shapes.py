"""The fake upstream's Codex Responses stream, encoded once per reply shape (pure).

The translated-stream workload sends an Anthropic Messages request for a Codex model; the
proxy forwards it to Codex (``/backend-api/codex/responses``) and translates the answer back.
So the fake upstream must also speak Codex: this is the stream the ChatGPT backend sends for
one text reply (the order and fields of trio_pool/testing/codex_script.py, which follows
protocols.md): response.created, response.in_progress, output_item.added, content_part.added,
``events`` output_text.delta events of ``event_bytes`` text each, output_text.done,
content_part.done, output_item.done (each of those three repeats the whole text, as the real
backend does) and response.completed with the usage. Every event is its own HTTP chunk.
"""

from __future__ import annotations

import time
from typing import Any

from bench.sse_shapes import LAST_CHUNK, Shape, chunk, dumps, json_response, response_head

RESPONSE_ID = "resp_bench_0001"
MESSAGE_ITEM = "msg_bench_0001"
MODEL = "gpt-6.1-sol"  # a Codex model: trio-pool routes it to a Codex account


def codex_event(kind: str, sequence: int, payload: dict[str, Any]) -> bytes:
    data = dumps({"type": kind, "sequence_number": sequence, **payload})
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


def _response(status: str, created: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": RESPONSE_ID,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": MODEL,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "usage": None,
        **extra,
    }


def codex_stream_events(shape: Shape, created: int) -> list[bytes]:
    """The SSE events of one streamed Codex reply, each complete with its blank line."""
    piece = ("abcdefghijklmnopqrstuvwxyz" * (shape.event_bytes // 26 + 1))[: shape.event_bytes]
    pieces = [f"{i}:{piece}"[: len(piece)] for i in range(shape.events)]
    text = "".join(pieces)
    at = {"item_id": MESSAGE_ITEM, "output_index": 0, "content_index": 0}
    pending = {"id": MESSAGE_ITEM, "type": "message", "role": "assistant", "status": "in_progress"}
    empty: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
    full = {**empty, "text": text}
    item = {**pending, "status": "completed", "content": [full]}
    tokens = max(1, len(text) // 4)
    usage = {
        "input_tokens": 12,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 12 + tokens,
    }
    first = _response("in_progress", created)
    kinds: list[tuple[str, dict[str, Any]]] = [
        ("response.created", {"response": first}),
        ("response.in_progress", {"response": first}),
        ("response.output_item.added", {"output_index": 0, "item": {**pending, "content": []}}),
        ("response.content_part.added", {**at, "part": empty}),
        *(("response.output_text.delta", {**at, "delta": p, "logprobs": []}) for p in pieces),
        ("response.output_text.done", {**at, "text": text, "logprobs": []}),
        ("response.content_part.done", {**at, "part": full}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        (
            "response.completed",
            {"response": _response("completed", created, output=[item], usage=usage)},
        ),
    ]
    return [codex_event(kind, n, payload) for n, (kind, payload) in enumerate(kinds)]


def rate_limit_headers(now: float) -> list[tuple[str, str]]:
    """The ``x-codex-*`` headers of a ChatGPT backend answer: far from any limit."""
    headers = [("x-codex-plan-type", "pro"), ("x-codex-active-limit", "premium")]
    for slot, minutes in (("primary", 300), ("secondary", 10080)):
        at = f"x-codex-{slot}-"
        headers += [
            (at + "used-percent", "1.0"),
            (at + "window-minutes", str(minutes)),
            (at + "reset-at", str(int(now + minutes * 60))),
            (at + "reset-after-seconds", str(minutes * 60)),
        ]
    return headers


def codex_error(status: int, detail: str) -> bytes:
    """The ChatGPT backend's refusal of a bad request: ``{"detail": …}``."""
    return json_response(status, {"detail": detail})


def codex_auth_error(status: int, message: str, code: str) -> bytes:
    error = {"message": message, "type": "invalid_request_error", "code": code}
    return json_response(status, {"error": error})


class CodexReplies:
    """The streamed Codex answer for one shape, as the pieces the upstream writes."""

    def __init__(self, shape: Shape, now: float | None = None) -> None:
        now = time.time() if now is None else now
        head = [
            ("content-type", "text/event-stream"),
            ("cache-control", "no-cache"),
            *rate_limit_headers(now),
            ("transfer-encoding", "chunked"),
        ]
        self.stream: list[bytes] = [response_head(200, head)]
        self.stream += [chunk(event) for event in codex_stream_events(shape, int(now))]
        self.stream.append(LAST_CHUNK)
