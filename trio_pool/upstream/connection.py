"""One outbound HTTP/1.1 connection: h11's client state over a trio stream.

The connection sends one request at a time and reads its answer; h11 parses the head and
decides the framing and keep-alive, and the body is read by upstream/body.py (per socket
read, every body byte that read brought).

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

from trio_pool.upstream.body import BodyReader, ChunkedBody, H11Body
from trio_pool.upstream.connect import Origin
from trio_pool.upstream.errors import NoAnswerError

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
        self._request: h11.Request | None = None
        self._head: h11.Response | None = None
        self._body: ChunkedBody | None = None
        self._socket = _socket_of(stream)

    def looks_dropped(self) -> bool:
        """Whether the server has closed (or written to) this idle connection."""
        return self._socket is not None and _readable(self._socket)

    async def send_request(self, request: h11.Request, body: bytes | AsyncIterable[bytes]) -> None:
        """Write the request; a bytes body goes out with the head in one write.

        ``NoAnswerError`` when the stream is already broken (a connection the server closed).
        """
        self.requests += 1
        self.pulled_body = False
        self._request, self._head, self._body = request, None, None
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
            raise NoAnswerError(_text(exc)) from exc

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
                    raise NoAnswerError(_text(exc)) from exc
                if not data and not answered:
                    raise NoAnswerError("the server closed the connection without answering")
                answered = True
                h.receive_data(bytes(data))
            elif type(event) is h11.Response:
                self._head = event
                return event
            elif (
                type(event) is not h11.InformationalResponse
            ):  # pragma: no cover - h11 yields no other
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before the head")

    def body_blocks(self, idle_s: float, where: str) -> BodyReader:
        """The response body, one item per socket read (upstream/body.py)."""
        if self._chunked():
            self._body = ChunkedBody(self.stream, self.h11.trailing_data[0], idle_s, where)
            return self._body
        return H11Body(self.h11, self.stream, idle_s, where)

    def _chunked(self) -> bool:
        """Whether the response body is chunked, by h11's own framing rules (which have
        already checked that a Transfer-Encoding is exactly "chunked")."""
        head, request = self._head, self._request
        if head is None or request is None or request.method == b"HEAD":
            return False
        if head.status_code in (204, 304):
            return False
        return any(name == b"transfer-encoding" for name, _ in head.headers)

    def reusable(self) -> bool:
        """Whether the exchange ended cleanly and both sides keep the connection open;
        if so, the connection is made ready for the next request."""
        h = self.h11
        body, self._body = self._body, None
        if body is not None:
            # Our decoder read the body, so h11 still waits for it: a fresh h11 state for
            # the next request, under h11's keep-alive rules.
            if not body.decoder.done or body.decoder.trailing or h.our_state is not h11.DONE:
                return False
            if not _keeps_alive(self._request, self._head):
                return False
            self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)
            return True
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


def _text(exc: BaseException) -> str:
    cause = exc.__cause__
    return str(exc) or (str(cause) if cause is not None else "") or type(exc).__name__


def _keeps_alive(request: h11.Request | None, response: h11.Response | None) -> bool:
    """h11's rule: HTTP/1.1 on both sides and no "Connection: close" from either."""
    if request is None or response is None or response.http_version < b"1.1":
        return False
    for event in (request, response):
        for name, value in event.headers:
            if name == b"connection" and b"close" in value.lower().replace(b" ", b"").split(b","):
                return False
    return True
