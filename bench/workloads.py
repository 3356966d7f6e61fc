"""The requests every target gets and the checks on their answers.

All targets get the same Claude Code-shaped ``POST /v1/messages``: a small non-streaming one
(answered with a ~300-byte JSON message) and a streaming one (answered with the reply shape
the fake upstream is set to). Only the credential differs: DIRECT and the bare relay send an
account's own OAuth token (as the proxy would), trio-pool and claude-code-router get a
placeholder, which they replace with their own.

Two more stream workloads run on a trio-pool whose Codex upstream is the fake upstream too:
the same Messages stream for a Codex model (translated to Codex Responses and back), and a
Codex CLI-shaped ``POST /backend-api/codex/responses`` that gets the very same Codex stream
without translation (so the difference between the two is the translation's cost).
"""

from __future__ import annotations

import http.client
import json
from typing import Any

import attrs

from bench.client import encode_json_request
from bench.load import Check

HOST = "127.0.0.1"
MESSAGE_STOP = b'data: {"type":"message_stop"}\n\n'
OAUTH_BETA = "oauth-2025-04-20"
ANTHROPIC_VERSION = "2023-06-01"
PLACEHOLDER = (("authorization", "Bearer pool"),)


@attrs.frozen
class StreamShape:
    """A reply shape of the fake upstream (``bench.sse_shapes.Shape`` fields)."""

    events: int
    event_bytes: int


LONG_STREAM = StreamShape(200, 200)  # the 200-event x 200-byte streams
SHORT_STREAM = StreamShape(3, 12)  # for time to first byte: the first event matters


CODEX_MODEL = "gpt-6.1-sol"  # routed to a Codex account, whatever the client's API
CODEX_PATH = "/backend-api/codex/responses"
MESSAGES_PATH = "/v1/messages"
CODEX_COMPLETED = b"event: response.completed\n"


def message_body(*, stream: bool, model: str = "claude-sonnet-4-5") -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello."}],
    }


def body_bytes(*, stream: bool) -> bytes:
    return json.dumps(message_body(stream=stream), separators=(",", ":")).encode()


def translated_body() -> bytes:
    """The streaming Messages request for a Codex model (Claude Code set up on Codex)."""
    body = message_body(stream=True, model=CODEX_MODEL)
    return json.dumps(body, separators=(",", ":")).encode()


def codex_body() -> bytes:
    """What Codex CLI sends for the same prompt (the fields the ChatGPT backend requires)."""
    body = {
        "model": CODEX_MODEL,
        "instructions": "You are Codex.",
        "input": [
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Say hello."}],
            }
        ],
        "tools": [],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "store": False,
        "stream": True,
        "include": [],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def codex_headers(credentials: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Codex CLI's headers for a Responses request, with ``credentials``."""
    return [
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("originator", "codex_cli_rs"),
        *credentials,
    ]


def oauth_credentials(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def headers(credentials: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """Claude Code's headers for a Messages request, with ``credentials``."""
    return [
        ("content-type", "application/json"),
        ("anthropic-version", ANTHROPIC_VERSION),
        ("anthropic-beta", OAUTH_BETA),
        *credentials,
    ]


def message_requests(port: int, tokens: list[str], *, stream: bool) -> list[bytes]:
    """The same Claude request, one per bearer token, encoded for ``bench.client``."""
    body = message_body(stream=stream)
    out = []
    for token in tokens:
        extra = [(n, v) for n, v in headers(oauth_credentials(token)) if n != "content-type"]
        out.append(encode_json_request("/v1/messages", f"{HOST}:{port}", extra, body))
    return out


def small_ok(body: bytes) -> bool:
    return body.startswith(b"{") and b'"end_turn"' in body


def stream_ok(deltas: int) -> Check:
    def check(body: bytes) -> bool:
        return body.endswith(MESSAGE_STOP) and body.count(b"event: content_block_delta") == deltas

    return check


def codex_stream_ok(deltas: int) -> Check:
    def check(body: bytes) -> bool:
        # The last event (it repeats the whole output, so look for its start, not its end).
        last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
        return (
            last.startswith(CODEX_COMPLETED)
            and body.count(b"event: response.output_text.delta\n") == deltas
        )

    return check


def control(port: int, method: str, path: str, body: Any = None) -> Any:
    """A JSON call to the fake upstream's own endpoints (reply shape, statistics)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data)
        reply = conn.getresponse()
        text = reply.read()
    finally:
        conn.close()
    if reply.status != 200:
        raise RuntimeError(f"fake upstream refused {method} {path}: {text!r}")
    return json.loads(text)


def set_shape(port: int, shape: StreamShape) -> None:
    control(port, "POST", "/bench/config", attrs.asdict(shape))


def probe(
    port: int,
    credentials: tuple[tuple[str, str], ...],
    *,
    stream: bool,
    request: tuple[str, bytes, list[tuple[str, str]]] | None = None,
) -> bytes:
    """One request with http.client (which decodes chunked bodies); the body, or raises.
    ``request``: (path, body, headers) instead of the Messages request."""
    path, body, sent = request or (
        MESSAGES_PATH,
        body_bytes(stream=stream),
        headers(credentials),
    )
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("POST", path, body, dict(sent))
        reply = conn.getresponse()
        body = reply.read()
    finally:
        conn.close()
    if reply.status != 200:
        raise RuntimeError(f"status {reply.status}: {body[:300]!r}")
    return body
