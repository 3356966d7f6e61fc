"""JSON answers and requests for the dashboard's API (errors as ``{"error": {...}}``)."""

from __future__ import annotations

import json
import math
from typing import Any

from trio_pool.server.connection import Exchange

JSON = [("content-type", "application/json"), ("cache-control", "no-store")]
MAX_JSON_BYTES = 64 * 1024


async def reply(
    ex: Exchange, status: int, document: Any, headers: list[tuple[str, str]] | None = None
) -> None:
    await ex.respond(status, [*JSON, *(headers or [])], json.dumps(document).encode())


async def error(
    ex: Exchange,
    status: int,
    kind: str,
    message: str,
    *,
    retry_after_s: float | None = None,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    extra = list(headers or [])
    if retry_after_s is not None:
        extra.append(("retry-after", str(max(1, math.ceil(retry_after_s)))))
    await reply(ex, status, {"error": {"type": kind, "message": message}}, extra)


async def read_json(ex: Exchange) -> dict[str, Any] | None:
    """The request's JSON object, or None after answering 400 (not JSON, too big, not {}).

    A body over MAX_JSON_BYTES is refused without reading it: by its Content-Length up
    front, or (chunked) as soon as the bytes read pass the cap. The connection then closes
    rather than reading the rest, so a 60 MiB body costs at most about the cap.
    """
    length = ex.head.get("content-length")
    if length is not None and length.strip().isdigit() and int(length) > MAX_JSON_BYTES:
        await _too_large(ex)
        return None
    parts: list[bytes] = []
    size = 0
    while chunk := await ex.receive_chunk():
        size += len(chunk)
        if size > MAX_JSON_BYTES:
            await _too_large(ex)
            return None
        parts.append(chunk)
    body = b"".join(parts)
    try:
        document = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        await error(ex, 400, "invalid_request", "the body is not JSON")
        return None
    if not isinstance(document, dict):
        await error(ex, 400, "invalid_request", "expected a JSON object")
        return None
    return document


async def _too_large(ex: Exchange) -> None:
    ex.closing = True  # answer, then close: the rest of the body is never read
    await error(ex, 413, "too_large", f"the body is over {MAX_JSON_BYTES} bytes")
