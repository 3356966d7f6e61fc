"""A response body as an async iterator: per socket read, every body byte that read brought.

Never one item per HTTP chunk (an SSE upstream flushes one chunk per event, and the relay
writes the client once per item), and never holding bytes back for the next read. Each
read may wait ``idle_s``: one cancel scope per read, none per chunk. Failures come out
already mapped (the body phase of upstream/errors.py).

Two readers: ``ChunkedBody`` for chunked bodies (our decoder, upstream/chunked.py: h11
costs about 4 µs per chunk) and ``H11Body`` for the rest (Content-Length or read until
close), where h11 yields one ``Data`` per read anyway; its events are drained until h11
needs more data and joined. Classes rather than async generators, so that one left before
its end (a client hang-up) needs no finalizer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import h11
import trio

from trio_pool.upstream.chunked import ChunkedDecoder
from trio_pool.upstream.errors import Phase, timed_out, translate

READ_SIZE = 64 * 1024


class _Body(AsyncIterator[bytes]):
    def __init__(self, stream: trio.abc.Stream, idle_s: float, where: str) -> None:
        self._receive = stream.receive_some
        self._idle_s = idle_s
        self._where = where

    async def _read(self) -> bytes:
        """One socket read (b"" at the server's close) within idle_s."""
        with trio.move_on_after(self._idle_s):
            try:
                return bytes(await self._receive(READ_SIZE))
            except (trio.BrokenResourceError, OSError) as exc:
                raise self._error(exc) from exc
        raise timed_out(self._where, Phase.BODY, self._idle_s)

    def _error(self, exc: Exception) -> Exception:
        mapped = translate(exc, self._where, Phase.BODY, self._idle_s)
        return mapped if mapped is not None else exc  # pragma: no cover - always mapped


class ChunkedBody(_Body):
    """A chunked body, decoded a read at a time; ``first`` is what came with the head."""

    def __init__(self, stream: trio.abc.Stream, first: bytes, idle_s: float, where: str) -> None:
        super().__init__(stream, idle_s, where)
        self.decoder = ChunkedDecoder()
        self._first: bytes | None = first

    async def __anext__(self) -> bytes:
        decoder = self.decoder
        while not decoder.done:
            if self._first is not None:
                data, self._first = self._first, None
            else:
                data = await self._read()
                if not data:
                    cut = h11.RemoteProtocolError("peer closed connection in a chunked body")
                    raise self._error(cut)
            try:
                block = decoder.feed(data)
            except h11.RemoteProtocolError as exc:
                raise self._error(exc) from exc
            if block:
                return block
        raise StopAsyncIteration


class H11Body(_Body):
    """A body h11 reads (Content-Length, or until the server closes)."""

    def __init__(
        self, connection: h11.Connection, stream: trio.abc.Stream, idle_s: float, where: str
    ) -> None:
        super().__init__(stream, idle_s, where)
        self._h11 = connection
        self._done = False

    async def __anext__(self) -> bytes:
        h = self._h11
        while not self._done:
            parts: list[bytes] = []
            try:
                while True:
                    event = h.next_event()
                    kind = type(event)
                    if kind is h11.Data:
                        parts.append(event.data)  # type: ignore[union-attr]
                    elif event is h11.NEED_DATA:
                        break
                    elif kind is h11.EndOfMessage:
                        self._done = True
                        break
                    else:  # pragma: no cover - h11 yields nothing else inside a body
                        raise h11.RemoteProtocolError(f"unexpected {kind.__name__} in the body")
            except h11.RemoteProtocolError as exc:
                raise self._error(exc) from exc
            if parts:
                return parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
            if not self._done:
                # b"" is the server's close: h11 tells whether that ends the body or cuts it.
                h.receive_data(await self._read())
        raise StopAsyncIteration
