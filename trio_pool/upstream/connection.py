"""One outbound HTTP/1.1 connection: h11's client state over a trio stream.

The connection sends one request at a time and reads its answer; ``body_blocks`` yields,
per socket read, every body byte that read delivered. h11 turns a read into one ``Data``
event per HTTP chunk (an SSE upstream flushes one chunk per event), so the events are
drained until h11 needs more data and joined: the relay then writes the client once per
upstream read, never once per chunk, and nothing is held back waiting for the next read.

Failures are raised low-level (the client maps them, upstream/errors.py), except for the
one it must tell apart: ``NoAnswerError``, a connection that failed or closed before any
byte of the answer, which the client may retry once on a fresh connection when this one
had been sitting in the pool.
"""

from __future__ import annotations

import select
import sys
from collections.abc import AsyncIterable

import h11
import trio

from trio_pool.upstream.connect import Origin
from trio_pool.upstream.errors import NoAnswerError, Phase, timed_out, translate

READ_SIZE = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket under a (TLS over) TCP stream; None for other streams (tests)."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    return stream.socket if isinstance(stream, trio.SocketStream) else None


def _readable(sock: trio.socket.SocketType) -> bool:
    """True when an idle socket has something to read: for an HTTP connection between two
    requests that is the server's close (or garbage), so the connection is not reused."""
    if sys.platform == "win32" or not hasattr(select, "poll"):  # pragma: no cover
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class UpstreamConnection:
    """h11's client state for one stream; ``requests`` counts the requests it has carried."""

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
        self.requests = 0
        self.idle_since = 0.0
        self.pulled_body = False  # some of a streamed request body was taken (no resend)
        self._socket = _socket_of(stream)

    def looks_dropped(self) -> bool:
        """Whether the server has closed (or written to) this idle connection."""
        return self._socket is not None and _readable(self._socket)

    async def send_request(self, request: h11.Request, body: bytes | AsyncIterable[bytes]) -> None:
        """Write the request; a bytes body goes out with the head in one write.

        ``NoAnswerError`` when the stream is already broken (a connection the server closed).
        """
        self.requests += 1
        h = self.h11
        if isinstance(body, bytes | bytearray):
            data = h.send(request)
            if body:
                data += h.send(h11.Data(data=body))
            await self._send_first(data + h.send(h11.EndOfMessage()))
            return
        await self._send_first(h.send(request))
        self.pulled_body = True
        async for chunk in body:
            if chunk:
                await self.stream.send_all(h.send(h11.Data(data=chunk)))
        await self.stream.send_all(h.send(h11.EndOfMessage()))

    async def _send_first(self, data: bytes) -> None:
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, OSError) as exc:
            raise NoAnswerError(str(exc)) from exc

    async def read_head(self) -> h11.Response:
        """The response head (1xx answers skipped); ``NoAnswerError`` if the server hung up
        without answering."""
        h = self.h11
        answered = False
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await self.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, OSError) as exc:
                    if answered:
                        raise
                    raise NoAnswerError(str(exc)) from exc
                if not data and not answered:
                    raise NoAnswerError("the server closed the connection without answering")
                answered = True
                h.receive_data(bytes(data))
            elif type(event) is h11.Response:
                return event
            elif (
                type(event) is not h11.InformationalResponse
            ):  # pragma: no cover - h11 yields no other
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before the head")

    def body_blocks(self, idle_s: float, where: str) -> BodyBlocks:
        """The response body, one item per socket read (see the module docstring)."""
        return BodyBlocks(self, idle_s, where)

    def reusable(self) -> bool:
        """Whether the exchange ended cleanly and both sides keep the connection open;
        if so, h11 is made ready for the next request."""
        h = self.h11
        if h.their_state is h11.SEND_BODY:
            # A body nobody read (a 204, a HEAD answer) may be all in h11's buffer already.
            try:
                while (event := h.next_event()) is not h11.NEED_DATA:
                    if type(event) is h11.EndOfMessage:
                        break
            except h11.RemoteProtocolError:
                return False
        if h.our_state is not h11.DONE or h.their_state is not h11.DONE:
            return False
        h.start_next_cycle()
        return True

    async def aclose(self) -> None:
        """Close at once (no TLS close_notify wait): used for broken or unfinished exchanges
        and at shutdown, where nobody waits for a polite goodbye."""
        await trio.aclose_forcefully(self.stream)


class BodyBlocks:
    """An async iterator over a response body: per socket read, every body byte it brought.

    Each read may wait ``idle_s``: one cancel scope per read, none per HTTP chunk. Failures
    come out already mapped (the body phase). A class rather than an async generator, so
    that one left before its end (a client hang-up) needs no finalizer.
    """

    def __init__(self, connection: UpstreamConnection, idle_s: float, where: str) -> None:
        self._h11 = connection.h11
        self._receive = connection.stream.receive_some
        self._idle_s = idle_s
        self._where = where
        self._done = False

    def __aiter__(self) -> BodyBlocks:
        return self

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
                raise _body_error(exc, self._where, self._idle_s) from exc
            if parts:
                return parts[0] if len(parts) == 1 and type(parts[0]) is bytes else b"".join(parts)
            if not self._done:
                await self._read()
        raise StopAsyncIteration

    async def _read(self) -> None:
        with trio.move_on_after(self._idle_s):
            try:
                data = await self._receive(READ_SIZE)
            except (trio.BrokenResourceError, OSError) as exc:
                raise _body_error(exc, self._where, self._idle_s) from exc
            # b"" is the server's close: h11 tells whether that ends the body or cuts it.
            self._h11.receive_data(bytes(data))
            return
        raise timed_out(self._where, Phase.BODY, self._idle_s)


def _body_error(exc: Exception, where: str, idle_s: float) -> Exception:
    mapped = translate(exc, where, Phase.BODY, idle_s)
    return mapped if mapped is not None else exc  # pragma: no cover - always mapped
