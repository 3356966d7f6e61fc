"""The trio-websocket boundary: open an outbound socket, adopt an inbound one, frames as values.

Library errors become ours here: a refused handshake is ``HandshakeRefused`` (with the
upstream's status, headers and body, so the caller can classify it like an HTTP answer);
connecting and the handshake fail as the HTTP client's connect phase does
(upstream/errors.py: ``UpstreamConnectError`` / ``UpstreamTimeout``). Once open,
``WebSocket.receive()`` returns a message or a ``Closed`` value instead of raising.

Outbound sockets open their stream through a connector (upstream/connect.py), the same
one as HTTP requests: TCP or the HTTPS_PROXY tunnel, then TLS; trio-websocket then speaks
the handshake over it.

Inbound sockets: h11 has already parsed the handshake, and trio-websocket wants to parse it
itself, so the head is rebuilt and replayed to it in front of the raw stream (``ReplayStream``),
followed by the bytes h11 had read past the head. Nothing the client sent is lost.
"""

from __future__ import annotations

import logging
import math
import ssl
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, NoReturn

import attrs
import trio

from trio_pool.errors import UpstreamError, UpstreamProtocolError
from trio_pool.server.messages import Headers, RequestHead, decode_headers, encode_headers
from trio_pool.upstream.connect import Connector, NetworkConnector, Origin
from trio_pool.upstream.errors import Phase, map_errors

if TYPE_CHECKING:
    # Imported where a socket is made: trio-websocket and wsproto are about 2.8 MiB of a
    # proxy that may never see a WebSocket (idle RSS, bench/).
    import trio_websocket

log = logging.getLogger(__name__)

# Codex sends whole turns (about 60-70 kB) as one message; 16 MiB leaves room for large inputs.
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
# Messages buffered per direction: small, so a slow reader slows the sender (back-pressure).
MESSAGE_QUEUE = 4
RECEIVE_BYTES = 64 * 1024
CLOSE_TIMEOUT_S = 2.0
# Close codes that must never appear in a close frame (RFC 6455 §7.4.1): a lost upstream
# (1006) is told to the client as 1011, a close without a code (1005) as a plain 1000.
_UNSENDABLE = {1005: 1000, 1006: 1011, 1015: 1011}
MAX_REASON_BYTES = 123


class HandshakeRefused(UpstreamError):
    """The upstream answered the upgrade with an HTTP status instead of 101."""

    def __init__(self, status: int, headers: Headers, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.status_hint = status
        super().__init__(f"the upstream refused the WebSocket upgrade with {status}")


@attrs.frozen
class Closed:
    """How a socket ended: its close code and reason (1006 when the TCP connection died)."""

    code: int
    reason: str = ""

    @property
    def sendable(self) -> Closed:
        """This close as one we may put in a close frame (reason cut to 123 bytes)."""
        reason = self.reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
        return Closed(_UNSENDABLE.get(self.code, self.code), reason)


@attrs.define(eq=False)
class WebSocket:
    """One open socket (either side), with value-returning receive and forgiving send."""

    conn: trio_websocket.WebSocketConnection

    @property
    def subprotocol(self) -> str | None:
        return self.conn.subprotocol

    @property
    def handshake_headers(self) -> Headers:
        """The upstream's 101 headers (empty for an inbound socket)."""
        return decode_headers(list(self.conn.handshake_headers))

    async def receive(self) -> str | bytes | Closed:
        import trio_websocket

        try:
            return await self.conn.get_message()
        except trio_websocket.ConnectionClosed as exc:
            reason = exc.reason
            return Closed(1006) if reason is None else Closed(reason.code, reason.reason or "")

    async def send(self, message: str | bytes) -> bool:
        """Send one message; False when the socket is already closed."""
        import trio_websocket

        try:
            await self.conn.send_message(message)
        except trio_websocket.ConnectionClosed:
            return False
        return True

    async def close(self, closed: Closed) -> None:
        """Send a close frame and wait (bounded) for the answer; the stream is closed after."""
        out = closed.sendable
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            await self.conn.aclose(out.code, out.reason or None)


@asynccontextmanager
async def open_socket(
    url: str,
    headers: Headers | list[tuple[str, str]],
    *,
    subprotocols: tuple[str, ...] = (),
    ssl_context: ssl.SSLContext | None = None,
    connector: Connector | None = None,
    connect_timeout_s: float = 15.0,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> AsyncIterator[WebSocket]:
    """An outbound socket to ``url`` sending ``headers``; closed (bounded) on exit.

    The stream is opened by ``connector`` (by default a ``NetworkConnector`` with
    ``ssl_context``), so a socket goes through HTTPS_PROXY like every HTTP request.
    """
    import trio_websocket

    origin = Origin.of_url(url)
    parts = urllib.parse.urlsplit(url)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    where = url.split("?", 1)[0]
    connect = connector or NetworkConnector(ssl_context)
    stream: trio.abc.Stream | None = None
    try:
        # trio-websocket reads the socket in a task of this nursery, beside the caller's block.
        async with trio.open_nursery() as nursery:
            with map_errors(where, Phase.CONNECT, connect_timeout_s):
                with trio.fail_after(connect_timeout_s):
                    stream = await connect(origin)
                    conn = await trio_websocket.wrap_client_stream(
                        nursery,
                        stream,  # type: ignore[arg-type]  # any trio stream will do
                        origin.host_header,
                        resource,
                        subprotocols=subprotocols or None,
                        extra_headers=encode_headers(list(headers)),
                        message_queue_size=MESSAGE_QUEUE,
                        max_message_size=max_message_bytes,
                        receive_buffer_size=RECEIVE_BYTES,
                    )
            try:
                yield WebSocket(conn)
            finally:
                with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
                    await conn.aclose()
                with trio.CancelScope(shield=True):
                    await release(conn)
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if stream is not None:
            # A refused or unfinished handshake leaves the stream open (closing twice is fine).
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)
        refused = _refusal(group)
        if refused is None:
            _raise_sole(group, where)
        body = refused.body or b""
        headers = decode_headers(list(refused.headers))
        raise HandshakeRefused(refused.status_code, headers, body) from None


def _refusal(group: BaseExceptionGroup[BaseException]) -> trio_websocket.ConnectionRejected | None:
    """The upstream's refusal of the handshake, raised by trio-websocket's reader task."""
    import trio_websocket

    for exc in group.exceptions:
        if isinstance(exc, trio_websocket.ConnectionRejected):
            return exc
    return None


def _raise_sole(group: BaseExceptionGroup[BaseException], where: str) -> NoReturn:
    """Raise what the socket's hidden nursery caught as the caller would have seen it.

    The reader task ends quietly on a broken stream, so the group holds the caller's own
    exception (plus the reader's Cancelled): that one is raised unwrapped, keeping its
    context. A group of Cancelled alone is raised as is, for trio to route.
    """
    errors = [exc for exc in group.exceptions if not isinstance(exc, trio.Cancelled)]
    if not errors:
        raise group
    if len(errors) > 1:
        raise UpstreamProtocolError(f"the WebSocket to {where} failed twice at once") from group
    sole = errors[0]
    context = sole.__context__
    try:
        raise sole
    finally:
        sole.__context__ = context
        del sole, context


async def close_rejected(exc: trio_websocket.ConnectionRejected) -> None:
    """Close the stream of a refused handshake, which trio-websocket leaves open.

    The connection is only reachable from the frame that raised the refusal.
    """
    import trio_websocket

    tb = exc.__traceback__
    while tb is not None:
        conn = tb.tb_frame.f_locals.get("self")
        if isinstance(conn, trio_websocket.WebSocketConnection):
            await release(conn)
            return
        tb = tb.tb_next


async def release(conn: trio_websocket.WebSocketConnection) -> None:
    """Close the TCP stream under a finished client socket.

    trio-websocket 0.12 leaves it open when the server closed first (it waits for the
    server's TCP close and then never closes its own end).
    """
    await trio.aclose_forcefully(conn._stream)


class ReplayStream(trio.abc.Stream):
    """A stream that first yields ``prefix``, then reads from ``inner``; a write that the
    peer does not take within ``write_timeout_s`` breaks the stream (a client that stopped
    reading must not pin the upstream socket and the account for ever)."""

    def __init__(
        self, inner: trio.abc.Stream, prefix: bytes, *, write_timeout_s: float = math.inf
    ) -> None:
        self._inner = inner
        self._prefix = prefix
        self._write_timeout_s = write_timeout_s

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix, b""
            return data
        return bytes(await self._inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        with trio.move_on_after(self._write_timeout_s) as scope:
            await self._inner.send_all(data)
        if scope.cancelled_caught:
            # trio-websocket treats a broken stream as an abnormal close (1006).
            log.info("ws.client.write_timeout timeout_s=%s", self._write_timeout_s)
            raise trio.BrokenResourceError("the client stopped reading")

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._inner.aclose()


def rebuild_head(head: RequestHead) -> bytes:
    """The request head as bytes again, for the WebSocket library to parse."""
    lines = [f"{head.method} {head.target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in head.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def handshake_problem(head: RequestHead) -> str | None:
    """Why this is not a valid WebSocket handshake (answered with 400 before any upstream)."""
    if head.method != "GET" or not head.wants_upgrade("websocket"):
        return "a WebSocket handshake is a GET with Upgrade: websocket"
    if not head.get("sec-websocket-key"):
        return "the WebSocket handshake has no Sec-WebSocket-Key"
    if (head.get("sec-websocket-version") or "").strip() != "13":
        return "only WebSocket version 13 is supported"
    if head.get("host") is None:
        return "the WebSocket handshake has no Host header"
    if head.http_version < "1.1":
        return "a WebSocket handshake needs HTTP/1.1"  # RFC 6455 §4.1
    if head.get("transfer-encoding") is not None or (head.get("content-length") or "0") != "0":
        return "a WebSocket handshake carries no body"
    return None


async def adopt(
    nursery: trio.Nursery,
    stream: trio.abc.Stream,
    head: RequestHead,
    trailing: bytes,
    *,
    headers: Headers | list[tuple[str, str]] = (),
    subprotocol: str | None = None,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    write_timeout_s: float = math.inf,
) -> WebSocket | None:
    """Accept a handshake that h11 already parsed (check ``handshake_problem`` first);
    None when the client went away meanwhile.

    No extension is negotiated: a 101 without Sec-WebSocket-Extensions makes Codex send
    plain frames (real-clients.md §4).
    """
    import trio_websocket

    replay = ReplayStream(stream, rebuild_head(head) + trailing, write_timeout_s=write_timeout_s)
    try:
        with trio.fail_after(CLOSE_TIMEOUT_S):
            request = await trio_websocket.wrap_server_stream(
                nursery,
                replay,
                message_queue_size=MESSAGE_QUEUE,
                max_message_size=max_message_bytes,
                receive_buffer_size=RECEIVE_BYTES,
            )
        extra = encode_headers(headers)
        conn = await request.accept(subprotocol=subprotocol, extra_headers=extra)
    except (trio.TooSlowError, trio_websocket.ConnectionClosed):
        log.debug("ws.client.gone_during_accept path=%s", head.path)
        return None
    return WebSocket(conn)
