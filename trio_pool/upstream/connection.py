"""One outbound HTTP/1.1 connection over a trio stream.

The connection sends one request at a time and reads its answer; upstream/http1.py parses
the head and decides the framing and keep-alive, and the body is read by upstream/body.py
(per socket read, every body byte that read brought).

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

from trio_pool.server.deadlines import ReadDeadlines, close_under_waiters
from trio_pool.server.send_now import receive_when_ready, send_now, socket_of
from trio_pool.upstream.body import BodyReader, ChunkedBody, LengthBody
from trio_pool.upstream.connect import Origin
from trio_pool.upstream.errors import NoAnswerError
from trio_pool.upstream.http1 import (
    CHUNKED,
    EMPTY,
    UNTIL_CLOSE,
    OutboundRequest,
    ResponseHead,
    head_end,
    parse_response_head,
)

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
    """One request at a time over one stream; ``requests`` counts the requests it carried."""

    def __init__(self, stream: trio.abc.Stream, origin: Origin) -> None:
        self.stream = stream
        self.origin = origin
        self.requests = 0
        self.idle_since = 0.0
        self.pulled_body = False  # some of a streamed request body was taken (no resend)
        self._request: OutboundRequest | None = None
        self._head: ResponseHead | None = None
        self._rest = b""  # what came after the response head in the same reads
        self._body: BodyReader | None = None
        self._socket = _socket_of(stream)
        self._send_socket = socket_of(stream)  # a request is offered to the kernel first
        self.late = False  # closed by a read deadline (server/deadlines.py)

    @property
    def expirable(self) -> bool:
        """Whether ``expire`` can wake a wait on this connection (a socket under it)."""
        return self._socket is not None

    def expire(self) -> None:
        """Past a read deadline (the head's or a body read's): whoever waits on the socket
        wakes up with an error and finds the connection ``late``; the socket is closed."""
        self.late = True
        if self._socket is not None:
            close_under_waiters(self._socket)

    def looks_dropped(self) -> bool:
        """Whether the server has closed (or written to) this idle connection."""
        return self._socket is not None and _readable(self._socket)

    async def send_request(
        self, request: OutboundRequest, body: bytes | AsyncIterable[bytes]
    ) -> None:
        """Write the request; a bytes body goes out with the head in one write.

        ``NoAnswerError`` when the stream is already broken (a connection the server closed).
        """
        self.requests += 1
        self.pulled_body = False
        self._request, self._head, self._body = request, None, None
        if isinstance(body, bytes | bytearray):
            if request.chunked:
                data = request.head + (_chunk(body) if body else b"") + b"0\r\n\r\n"
            else:
                data = request.head + body
            await self._send_first(data)
            return
        await self._send_first(request.head)
        self.pulled_body = True
        async for chunk in body:
            if chunk:
                await self.stream.send_all(_chunk(chunk) if request.chunked else chunk)
        if request.chunked:
            await self.stream.send_all(b"0\r\n\r\n")

    async def _send_first(self, data: bytes) -> None:
        try:
            if self._send_socket is not None:
                sent = send_now(self._send_socket, data)
                if sent == len(data):
                    return
                data = data[sent:]
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, OSError) as exc:
            raise NoAnswerError(_text(exc)) from exc

    async def read_head(self) -> ResponseHead:
        """The response head (1xx answers skipped); ``NoAnswerError`` if the server hung up
        without answering."""
        request = self._request
        assert request is not None  # send_request came first
        buffer = b""
        while True:
            end = head_end(buffer, MAX_HEAD_BYTES)
            if end < 0:
                data: bytes | bytearray
                try:
                    if self._send_socket is not None:
                        data = await receive_when_ready(self._send_socket, READ_SIZE)
                    else:
                        data = await self.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, OSError) as exc:
                    if buffer:
                        raise
                    raise NoAnswerError(_text(exc)) from exc
                if not data:
                    if not buffer:
                        raise NoAnswerError("the server closed the connection without answering")
                    raise h11.RemoteProtocolError("peer unexpectedly closed connection")
                buffer = buffer + data if buffer else bytes(data)
                continue
            head = parse_response_head(buffer[:end], request)
            buffer = buffer[end:]
            if head.status >= 200:
                self._head, self._rest = head, buffer
                return head

    def body_blocks(
        self, idle_s: float, where: str, deadlines: ReadDeadlines | None = None
    ) -> BodyReader:
        """The response body, one item per socket read (upstream/body.py); each read within
        idle_s, kept by ``deadlines`` when it can close this connection under the read."""
        head = self._head
        assert head is not None  # read_head came first
        rest, self._rest = self._rest, b""
        watch = (deadlines, self) if deadlines is not None and self.expirable else None
        if head.framing == CHUNKED:
            self._body = ChunkedBody(self.stream, rest, idle_s, where, watch)
        else:
            until_close = head.framing == UNTIL_CLOSE
            self._body = LengthBody(
                self.stream, rest, head.length, until_close, idle_s, where, watch
            )
        return self._body

    def reusable(self) -> bool:
        """Whether the exchange ended cleanly and both sides keep the connection open."""
        head, body = self._head, self._body
        self._head = self._body = None
        if head is None or not head.keep_alive:
            return False
        if body is None:
            # Nobody asked for the body: reusable only when there is none.
            return head.framing == EMPTY and not self._rest
        return body.at_end() and not body.leftover()

    async def aclose(self) -> None:
        """Close at once (no TLS close_notify wait): used for broken or unfinished exchanges
        and at shutdown, where nobody waits for a polite goodbye."""
        await trio.aclose_forcefully(self.stream)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _text(exc: BaseException) -> str:
    cause = exc.__cause__
    return str(exc) or (str(cause) if cause is not None else "") or type(exc).__name__
