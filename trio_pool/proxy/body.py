"""The request body as the attempt loop needs it: held (replayable on another account) or
streaming (larger than ``max_inmem_body_bytes``: one account, no failover)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import attrs

from trio_pool.server.connection import Exchange

log = logging.getLogger(__name__)


@attrs.define
class Body:
    """The request body: held whole (replayable) or a held prefix plus the rest streaming."""

    held: bytes
    rest: AsyncIterator[bytes] | None = None
    length: int | None = None  # the client's Content-Length when streaming

    @property
    def replayable(self) -> bool:
        return self.rest is None


async def read_body(exchange: Exchange, limit: int) -> Body:
    """The body held whole up to ``limit`` bytes; beyond that a held prefix and the rest
    streaming (which then cannot fail over)."""
    length_text = exchange.head.get("content-length")
    length = int(length_text) if length_text and length_text.isdigit() else None
    if length is not None and length <= limit:
        return Body(await exchange.read_body())
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await exchange.receive_chunk()
        if not chunk:
            return Body(b"".join(parts))
        parts.append(chunk)
        size += len(chunk)

    async def rest() -> AsyncIterator[bytes]:
        while chunk := await exchange.receive_chunk():
            yield chunk

    log.info(
        "proxy.body.streaming bytes_over=%d reason='larger than max_inmem_body_bytes: no failover'",
        limit,
    )
    return Body(b"".join(parts), rest(), length)


async def chain(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk
