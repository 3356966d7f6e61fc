"""Shared plumbing of the simulated upstreams: bodies, JSON answers and the stream writer."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

import trio
import zstandard

from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead
from trio_pool.testing.faults import SimConfig

log = logging.getLogger(__name__)

JSON_HEADERS = (("content-type", "application/json"),)
SSE_HEADERS = (("content-type", "text/event-stream"), ("cache-control", "no-cache"))


class BadBody(Exception):
    """The request body could not be decoded (bad zstd or JSON): answer 400."""


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


async def read_body(ex: Exchange) -> bytes:
    """The request body, with ``Content-Encoding: zstd`` decoded (newer Codex compresses)."""
    body = await ex.read_body()
    encoding = (ex.head.get("content-encoding") or "").strip().lower()
    if encoding == "zstd" and body:
        try:
            # A streaming compressor writes frames without a content size: use a
            # decompressobj, which does not need one.
            return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(body))
        except zstandard.ZstdError as exc:
            raise BadBody(f"bad zstd body: {exc}") from exc
    if encoding not in ("", "identity", "zstd"):
        raise BadBody(f"unsupported content-encoding {encoding!r}")
    return body


def parse_json(body: bytes) -> dict[str, Any]:
    """A JSON object body; an empty body is an empty object."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise BadBody(f"body is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadBody("body is not a JSON object")
    return value


def bearer(head: RequestHead) -> str | None:
    value = head.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


async def respond_json(
    ex: Exchange, status: int, obj: Any, headers: Sequence[tuple[str, str]] = ()
) -> None:
    await ex.respond(status, [*JSON_HEADERS, *headers], dumps(obj))


def sse(event: str | None, data: bytes, *, crlf: bool = False) -> bytes:
    """One SSE event: optional ``event:`` line, one ``data:`` line, blank line."""
    nl = b"\r\n" if crlf else b"\n"
    out = b"data: " + data + nl + nl
    if event is not None:
        out = b"event: " + event.encode() + nl + out
    return out


async def send_stream(
    ex: Exchange,
    headers: Sequence[tuple[str, str]],
    config: SimConfig,
    *,
    head: Sequence[bytes],
    deltas: Sequence[bytes],
    deltas_blob: bytes,
    tail: Sequence[bytes],
    error_event: bytes,
) -> None:
    """Write a 200 event stream shaped and faulted by ``config``.

    Without delays or faults the stream goes out in one write, one HTTP chunk per event
    (the delta events are pre-encoded once per config). A "close" fault returns without ending the
    chunked body, so the server drops the connection and the client sees a broken message.
    """
    if config.first_byte_delay_s > 0:
        await trio.sleep(config.first_byte_delay_s)
    await ex.start_response(200, list(headers))
    if config.streams_plainly:
        # One HTTP chunk per event, as the providers flush them, in one write.
        await ex.send_chunks([*head, *(deltas or (deltas_blob,)), *tail])
        await ex.end()
        return
    limit = config.fail_after_events
    delay = config.event_delay_s
    sent = 0
    for group in (head, deltas, tail):
        for event in group:
            if limit is not None and sent >= limit:
                log.debug("sim.stream.fault mode=%s after=%d", config.fail_mode, sent)
                if config.fail_mode == "error_event":
                    await ex.send(error_event)
                    await ex.end()
                return
            if sent and delay > 0:
                await trio.sleep(delay)
            await ex.send(event)
            sent += 1
    await ex.end()
