"""A response body as an async iterator: per socket read, every body byte that read brought.

Never one item per HTTP chunk (an SSE upstream flushes one chunk per event, and the relay
writes the client once per item), and never holding bytes back for the next read. Each
read may wait ``idle_s``, kept by the client's read deadlines (server/deadlines.py) on a
socket, by a cancel scope per read on other streams; nothing per chunk. Failures come out
already mapped (the body phase of upstream/errors.py).

Two readers: ``ChunkedBody`` for chunked bodies (our decoder, server/chunked.py: h11
costs about 4 µs per chunk) and ``LengthBody`` for the rest (a Content-Length, none, or
read until the server closes). Classes rather than async generators, so that one left
before its end (a client hang-up) needs no finalizer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import h11
import trio

from trio_pool.server.chunked import ChunkedDecoder
from trio_pool.server.deadlines import Expirable, ReadDeadlines
from trio_pool.server.send_now import receive_now, receive_when_ready, socket_of
from trio_pool.upstream.errors import Phase, timed_out, translate

# (the client's deadlines, the connection they may close under a read)
Watch = tuple[ReadDeadlines, Expirable]

READ_SIZE = 64 * 1024


class BodyReader(AsyncIterator[bytes]):
    """The two readers' common part: the socket read, and what the relay asks of both."""

    def __init__(
        self, stream: trio.abc.Stream, idle_s: float, where: str, watch: Watch | None
    ) -> None:
        self._receive = stream.receive_some
        self._socket = socket_of(stream)  # plain TCP: read without trio's socket layer
        self._idle_s = idle_s
        self._where = where
        self._watch = watch

    def at_end(self) -> bool:
        """The whole body has been handed out (the relay then ends the client's answer in
        the same write as its last bytes)."""
        raise NotImplementedError

    def take_buffered(self) -> bytes:
        """The body bytes already read (they came with the head), without waiting for more;
        the relay sends them with the response head, in one write."""
        raise NotImplementedError

    def leftover(self) -> bytes:
        """Bytes the server sent past the end of the body (the connection is not reused)."""
        raise NotImplementedError

    async def _read(self) -> bytes:
        """One socket read (b"" at the server's close) within idle_s."""
        watch = self._watch
        if watch is None:
            with trio.move_on_after(self._idle_s):
                try:
                    return bytes(await self._receive(READ_SIZE))
                except (trio.BrokenResourceError, OSError) as exc:
                    raise self._error(exc) from exc
            raise timed_out(self._where, Phase.BODY, self._idle_s)
        deadlines, connection = watch
        sock = self._socket
        data: bytes | bytearray | None
        try:
            if sock is not None:
                data = receive_now(sock, READ_SIZE)
                if data is not None:
                    # Already there: no wait, but a checkpoint all the same (as trio's own
                    # receive makes), so a fast upstream cannot keep the loop to itself.
                    await trio.lowlevel.checkpoint()
                    return data
            deadlines.add(connection, self._idle_s)
            try:
                if sock is not None:
                    data = await receive_when_ready(sock, READ_SIZE)
                else:
                    data = bytes(await self._receive(READ_SIZE))
            finally:
                deadlines.discard(connection)
        except Exception as exc:
            if connection.late:
                raise timed_out(self._where, Phase.BODY, self._idle_s) from None
            if isinstance(exc, trio.BrokenResourceError | OSError):
                raise self._error(exc) from exc
            raise
        if connection.late:
            # Expired after the wait (TLS can hand out bytes it already held): the socket
            # under it is closed all the same.
            raise timed_out(self._where, Phase.BODY, self._idle_s)
        return data

    def _error(self, exc: Exception) -> Exception:
        mapped = translate(exc, self._where, Phase.BODY, self._idle_s)
        return mapped if mapped is not None else exc  # pragma: no cover - always mapped


class ChunkedBody(BodyReader):
    """A chunked body, decoded a read at a time; ``first`` is what came with the head."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        first: bytes,
        idle_s: float,
        where: str,
        watch: Watch | None = None,
    ) -> None:
        super().__init__(stream, idle_s, where, watch)
        self.decoder = ChunkedDecoder()
        self._first: bytes | None = first

    def at_end(self) -> bool:
        return self.decoder.done

    def leftover(self) -> bytes:
        return self.decoder.trailing

    def take_buffered(self) -> bytes:
        data, self._first = self._first, None
        if not data:
            return b""
        try:
            return self.decoder.feed(data)
        except h11.RemoteProtocolError as exc:
            raise self._error(exc) from exc

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


class LengthBody(BodyReader):
    """A body of a declared length (0 for none), or read until the server closes."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        first: bytes,
        length: int,
        until_close: bool,
        idle_s: float,
        where: str,
        watch: Watch | None = None,
    ) -> None:
        super().__init__(stream, idle_s, where, watch)
        self._first = first
        self._remaining = length
        self._until_close = until_close
        self._done = not until_close and not length
        self._trailing = b""  # bytes past the declared length (none from a sane server)

    def at_end(self) -> bool:
        return self._done

    def leftover(self) -> bytes:
        return self._trailing

    def take_buffered(self) -> bytes:
        data, self._first = self._first, b""
        return self._take(data) if data else b""

    def _take(self, data: bytes) -> bytes:
        if self._until_close:
            return data
        if len(data) >= self._remaining:
            data, self._trailing = data[: self._remaining], data[self._remaining :]
            self._remaining = 0
            self._done = True
            return data
        self._remaining -= len(data)
        return data

    async def __anext__(self) -> bytes:
        if self._first:
            block = self.take_buffered()
            if block:
                return block
        while not self._done:
            data = await self._read()
            if data:
                return self._take(data)
            if self._until_close:
                self._done = True  # the server's close ends such a body
                break
            cut = h11.RemoteProtocolError(
                "peer closed connection without sending complete message body"
            )
            raise self._error(cut)
        raise StopAsyncIteration
