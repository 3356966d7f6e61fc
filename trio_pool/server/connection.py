"""One HTTP/1.1 connection: the protocol state (server/http1.py) driven over a trio stream.

The connection task reads request heads under the head timeout, hands each request to the
handler as an ``Exchange`` and, while the handler streams its answer, watches the socket so
that a client hang-up cancels the handler promptly (not at its next write): within
``hang_up_watch_delay_s`` of the request's body, at once after that.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence

import attrs
import trio

from trio_pool.errors import ClientDisconnected as ClientDisconnected  # re-exported
from trio_pool.errors import ClientProtocolError
from trio_pool.server.deadlines import ReadDeadlines, close_under_waiters
from trio_pool.server.http1 import ProtocolError, SendError, ServerProtocol
from trio_pool.server.messages import Headers, RequestHead
from trio_pool.server.send_now import receive_now, receive_when_ready, send_now, socket_of

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
MAX_HEAD_BYTES = 64 * 1024
# How much pipelined data we buffer while a response is streaming before we stop reading.
MAX_PIPELINED_BYTES = 256 * 1024
# Bounded time for the last bytes of a closing connection (ASYNC102: shielded cleanup).
CLOSE_TIMEOUT_S = 1.0


@attrs.frozen
class ServerLimits:
    max_body_bytes: int = 64 * 1024 * 1024
    head_timeout_s: float = 30.0
    keepalive_idle_s: float = 75.0
    # A body must average this rate: each byte buys 1/rate s on top of head_timeout_s (the
    # rule of Apache's mod_reqtimeout), so a trickle cannot hold a connection for ever.
    min_body_bytes_per_s: float = 1024.0
    # A client that takes longer than this to accept one write has stopped reading: cut it,
    # so that it does not pin an upstream connection and an account lease.
    write_timeout_s: float = 300.0
    # Open client connections at most (the accept loop waits for a free slot); 0: no cap.
    max_connections: int = 0
    # A handler still running this long after its request body was read gets the hang-up
    # watch (a read of the client's socket that cancels it at the client's close). Watching
    # every request at once cost about a tenth of the CPU of a small request (a task switch,
    # an epoll change and a cancelled wait each); an answer or a short stream is over before
    # this delay, and a model's stream, which runs for seconds, is watched after it.
    hang_up_watch_delay_s: float = 0.1


# error_body(status, message, head) -> (headers, body): lets the app answer server-level
# errors in the right provider's shape once the path is known.
ErrorBody = Callable[[int, str, RequestHead | None], tuple[list[tuple[str, str]], bytes]]


def plain_error_body(
    status: int, message: str, head: RequestHead | None
) -> tuple[list[tuple[str, str]], bytes]:
    import json

    body = json.dumps({"error": {"code": status, "message": message}}).encode()
    return [("content-type", "application/json")], body


class Exchange:
    """One request and its response, as the handler sees them."""

    def __init__(self, conn: HTTPConnection, head: RequestHead) -> None:
        self._conn = conn
        self.head = head
        self.client = conn.peer
        self.response_started = False
        self.detached = False
        self._body_done = False
        self._body_bytes = 0
        self._body_started_at: float | None = None
        self.closing = False

    # -- request body ------------------------------------------------------------------

    async def receive_chunk(self) -> bytes:
        """The next piece of the request body; b"" once the body is complete."""
        if self._body_done:
            return b""
        conn = self._conn
        proto = conn.proto
        if proto.waiting_for_100_continue:
            await conn.write(proto.informational(100))
        if self._body_started_at is None:
            self._body_started_at = trio.current_time()
        while True:
            try:
                data = proto.next_body()
            except ProtocolError as exc:
                raise ClientProtocolError(str(exc), exc.status_hint) from exc
            if data is None:
                await conn.receive(self._body_deadline())
                continue
            if not data:
                self._body_done = True
                conn.watch_hang_up(self)
                return b""
            self._body_bytes += len(data)
            if self._body_bytes > conn.limits.max_body_bytes:
                raise ClientProtocolError(
                    f"request body is larger than max_body_bytes "
                    f"({conn.limits.max_body_bytes} bytes)",
                    413,
                )
            return data

    def _body_deadline(self) -> float:
        """Each read may wait at most head_timeout_s, and the body as a whole must keep up
        the minimum rate (after a head_timeout_s allowance)."""
        limits = self._conn.limits
        per_read = trio.current_time() + limits.head_timeout_s
        if self._body_started_at is None or limits.min_body_bytes_per_s <= 0:
            return per_read
        earned = self._body_bytes / limits.min_body_bytes_per_s
        return min(per_read, self._body_started_at + limits.head_timeout_s + earned)

    async def read_body(self) -> bytes:
        """The whole request body (bounded by max_body_bytes)."""
        parts = []
        while chunk := await self.receive_chunk():
            parts.append(chunk)
        return b"".join(parts)

    @property
    def body_complete(self) -> bool:
        return self._body_done

    # -- response ------------------------------------------------------------------------

    async def start_response(
        self,
        status: int,
        headers: Headers | list[tuple[str, str]],
        body: bytes = b"",
        *,
        end: bool = False,
    ) -> None:
        """The response head, with the body bytes already at hand (and, with ``end``, the
        end of the message) in the same write: a small answer costs one send, not three."""
        if self.response_started:
            raise RuntimeError("response already started")
        self.response_started = True
        out = list(headers)
        conn = self._conn
        if self.closing or conn.closing:
            out.append(("connection", "close"))
        proto = conn.proto
        try:
            data = proto.response_head(status, out)
            if body:
                data += proto.body(body)
            if end:
                data += proto.end()
        except SendError:
            proto.send_failed()
            raise
        await conn.write(data)

    async def send(self, data: bytes) -> None:
        if data:
            await self._conn.write(self._conn.framed(data))

    async def send_chunks(self, pieces: Sequence[bytes]) -> None:
        """Several body pieces, each framed as its own HTTP chunk, written at once (the
        simulators use it to look like an upstream that flushes once per SSE event)."""
        conn = self._conn
        data = b"".join([conn.framed(piece) for piece in pieces])
        if data:
            await conn.write(data)

    async def end(self, data: bytes = b"") -> None:
        """The last body bytes, if any, and the end of the message, in one write."""
        conn = self._conn
        proto = conn.proto
        try:
            out = proto.body(data) + proto.end()
        except SendError:
            proto.send_failed()
            raise
        if out:
            await conn.write(out)

    async def respond(
        self, status: int, headers: Headers | list[tuple[str, str]], body: bytes = b""
    ) -> None:
        """A whole response in one write (Content-Length set here)."""
        out = [(k, v) for k, v in headers if k not in ("content-length", "transfer-encoding")]
        out.append(("content-length", str(len(body))))
        # A HEAD answer has the GET's headers and no body.
        await self.start_response(
            status, out, b"" if self.head.method == "HEAD" else body, end=True
        )

    # -- protocol switch -------------------------------------------------------------------

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        """Take over the raw stream (for WebSocket), with the bytes already read past the head."""
        self.detached = True
        buffer = self._conn.proto.buffer
        data = bytes(buffer)
        buffer.clear()
        return self._conn.stream, data


Handler = Callable[[Exchange], Awaitable[None]]


class HTTPConnection:
    """The HTTP/1.1 <-> trio pump for one accepted connection."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        limits: ServerLimits,
        *,
        peer: str = "",
        error_body: ErrorBody = plain_error_body,
        idle_deadlines: ReadDeadlines | None = None,
    ) -> None:
        self.stream = stream
        self.limits = limits
        self.peer = peer
        self.error_body = error_body
        self.proto = ServerProtocol(MAX_HEAD_BYTES)
        self.closing = False  # set on shutdown: finish the current response, then close
        self.detached = False  # a handler took the raw stream (WebSocket): do not close it
        self._idle_scope: trio.CancelScope | None = None  # waiting for the next head
        # The exchange whose handler the hang-up watcher guards, the scope it cancels on a
        # hang-up (the connection's: a hang-up ends it anyway, and a scope per request cost
        # about 4 µs), and the watcher's read while it watches.
        self._watched: Exchange | None = None
        self._hang_up_scope: trio.CancelScope | None = None
        self._watch_scope: trio.CancelScope | None = None
        self._hang_up_lot = trio.lowlevel.ParkingLot()
        self._armed = False  # the watched handler's body is read: watch from _armed_at + delay
        self._armed_at = 0.0
        # Plain TCP only: a TLS stream may hold decrypted bytes while its socket is quiet.
        self._socket = stream.socket if isinstance(stream, trio.SocketStream) else None
        self._send_socket = socket_of(stream)  # writes offered to the kernel first
        self._watch_ended = trio.lowlevel.ParkingLot()
        # The wait for the next request head is bounded by the server's read deadlines
        # (server/deadlines.py) on plain TCP, by a cancel scope otherwise.
        self._idle_deadlines = idle_deadlines if self._send_socket is not None else None
        self._idle_waiting = False
        self.late = False  # closed by its idle deadline (or the shutdown) while waiting

    def expire(self) -> None:
        """Idle past keepalive_idle_s (or the server is stopping): the wait for the next head
        wakes with an error, sees ``late`` and ends the connection quietly."""
        self.late = True
        if self._send_socket is not None:
            close_under_waiters(self._send_socket)

    @property
    def _eof(self) -> bool:
        return self.proto.closed

    # -- low level -----------------------------------------------------------------------

    async def _receive(self) -> None:
        try:
            data = await self.stream.receive_some(READ_SIZE)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise ClientDisconnected from exc
        self.proto.receive_data(bytes(data))

    def _take_waiting_bytes(self) -> bool:
        """Bytes the client already sent (the next request, under load), taken without a
        timeout scope or trio's read: its checkpoint would add a trip through the scheduler
        between two requests, and the request that follows yields anyway when it waits for
        the upstream. False when nothing is there (or on TLS and test streams)."""
        if self._send_socket is None:
            return False
        try:
            data = receive_now(self._send_socket, READ_SIZE)
        except OSError as exc:
            raise ClientDisconnected from exc
        if data is None:
            return False
        self.proto.receive_data(data)
        return True

    async def _receive_when_ready(self) -> None:
        """One read once the socket turns readable (plain TCP; else ``_receive``): right
        after _take_waiting_bytes found nothing, trio's read would first fail (a syscall
        and an exception for nothing)."""
        sock = self._send_socket
        if sock is None:
            await self._receive()
            return
        try:
            data = await receive_when_ready(sock, READ_SIZE)
        except (trio.ClosedResourceError, OSError) as exc:
            raise ClientDisconnected from exc
        self.proto.receive_data(data)

    async def _wait_readable(self) -> None:
        """Wait for the socket to hold something before the watcher reads it: a hang-up or
        a pipelined request is rare, and receive_some would first try a read that fails
        with EAGAIN, a syscall and an exception for nothing. (Not for the next request head:
        under load it is often there already, and a wait would cost a trip through epoll.)"""
        if self._socket is not None:
            await trio.lowlevel.wait_readable(self._socket)

    async def receive(self, deadline: float = math.inf) -> None:
        """One read into the protocol's buffer, by ``deadline`` (then 408)."""
        if self.proto.closed:
            raise ClientDisconnected
        with trio.move_on_at(deadline):
            await self._receive()
            return
        raise ClientProtocolError("the client sent its request too slowly", 408)

    def framed(self, data: bytes) -> bytes:
        """Body bytes as they go on the wire (chunk framing, length checks)."""
        try:
            return self.proto.body(data)
        except SendError:
            self.proto.send_failed()
            raise

    async def write(self, data: bytes) -> None:
        timeout_s = self.limits.write_timeout_s
        try:
            if self._send_socket is not None:
                sent = send_now(self._send_socket, data)
                if sent == len(data):
                    return
                data = data[sent:]
            with trio.move_on_after(timeout_s) as scope:
                await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self.proto.send_failed()
            raise ClientDisconnected from exc
        if scope.cancelled_caught:
            # Part of the data may be written: the stream is unusable from here on.
            self.proto.send_failed()
            log.info("server.client.write_timeout timeout_s=%s", timeout_s)
            raise ClientDisconnected("the client stopped reading")

    async def aclose(self) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S, shield=True):
            try:
                if isinstance(self.stream, trio.SocketStream):
                    await self.stream.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            await self.stream.aclose()

    # -- request heads ---------------------------------------------------------------------

    async def _read_head(self, first: bool, stopping: trio.Event) -> RequestHead | None:
        """The next request head, or None when the connection should just close.

        An idle keep-alive connection is closed quietly after keepalive_idle_s; once the
        first byte of a head has arrived, the whole head must arrive within head_timeout_s.
        """
        now = trio.current_time()
        if first:
            head_deadline = now + self.limits.head_timeout_s
            idle_deadline = head_deadline
        else:
            # Bytes pipelined behind the last request are the start of this head: it is
            # under way, so it must be whole by head_timeout_s (without this, a request
            # followed by a few bytes in the same packet held the connection for ever).
            head_deadline = now + self.limits.head_timeout_s if self.proto.buffer else math.inf
            idle_deadline = now + self.limits.keepalive_idle_s
        proto = self.proto
        while True:
            try:
                head = proto.next_request()
            except ProtocolError as exc:
                raise ClientProtocolError(str(exc), exc.status_hint) from exc
            if head is not None:
                return head
            if proto.closed:
                return None
            buffered = bool(proto.buffer)
            if not buffered and (stopping.is_set() or self.closing):
                return None
            if self._take_waiting_bytes():
                if head_deadline == math.inf:
                    head_deadline = trio.current_time() + self.limits.head_timeout_s
                continue
            if not buffered and self._idle_deadlines is not None:
                # Idle: the deadline (and the shutdown) close the socket under the wait.
                self._idle_deadlines.add(self, self.limits.keepalive_idle_s)
                self._idle_waiting = True
                try:
                    await self._receive_when_ready()
                except ClientDisconnected:
                    if self.late:
                        return None
                    raise
                finally:
                    self._idle_waiting = False
                    self._idle_deadlines.discard(self)
                if self.late:
                    return None
                if proto.buffer and head_deadline == math.inf:
                    head_deadline = trio.current_time() + self.limits.head_timeout_s
                continue
            deadline = head_deadline if buffered else idle_deadline
            with trio.move_on_at(deadline) as scope:
                # Idle, the scope is also cancelled when the server starts shutting down
                # (by _close_idle_on_shutdown, the connection's helper task).
                self._idle_scope = None if buffered else scope
                try:
                    await self._receive()
                finally:
                    self._idle_scope = None
            if scope.cancelled_caught:
                if buffered:
                    raise ClientProtocolError("the client sent its request head too slowly", 408)
                return None
            if proto.buffer and head_deadline == math.inf:
                head_deadline = trio.current_time() + self.limits.head_timeout_s

    # -- the loop -------------------------------------------------------------------------

    async def serve(self, handler: Handler, stopping: trio.Event) -> None:
        """Serve requests until the client closes, a limit is hit, or the server stops.

        Two helper tasks live as long as the connection (a task and a nursery per request
        cost about 50 µs each): one ends an idle wait when the server starts shutting down,
        the other notices a client hang-up while a handler runs.
        """
        try:
            async with trio.open_nursery() as helpers:
                self._hang_up_scope = helpers.cancel_scope
                helpers.start_soon(self._close_idle_on_shutdown, stopping)
                helpers.start_soon(self._watch_hang_ups)
                await self._serve_requests(handler, stopping)
                helpers.cancel_scope.cancel()
        finally:
            if not self.detached:
                await self.aclose()

    async def _serve_requests(self, handler: Handler, stopping: trio.Event) -> None:
        first = True
        try:
            while True:
                try:
                    head = await self._read_head(first, stopping)
                except ClientProtocolError as exc:
                    await self._send_error(exc.status_hint, str(exc), None)
                    return
                if head is None:
                    return
                first = False
                if (
                    head.get("transfer-encoding") is not None
                    and head.get("content-length") is not None
                ):
                    # RFC 9112 §6.3: a request framed both ways is a smuggling attempt or
                    # a broken intermediary; chunked would win and the connection stay open.
                    message = "a request may not carry both Transfer-Encoding and Content-Length"
                    await self._send_error(400, message, head)
                    return
                exchange = Exchange(self, head)
                keep_going = await self._run_exchange(handler, exchange)
                if not keep_going or exchange.detached:
                    return
                if self.closing or stopping.is_set() or not self.proto.start_next_cycle():
                    return
        except ClientDisconnected:
            return

    async def _close_idle_on_shutdown(self, stopping: trio.Event) -> None:
        await stopping.wait()
        if self._idle_scope is not None:
            self._idle_scope.cancel()
        if self._idle_waiting:
            self.expire()

    async def _run_exchange(self, handler: Handler, exchange: Exchange) -> bool:
        """Run the handler for one request; False when the connection must close."""
        length = exchange.head.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limits.max_body_bytes:
            await self._send_error(
                413,
                f"request body of {length} bytes is larger than max_body_bytes "
                f"({self.limits.max_body_bytes} bytes)",
                exchange.head,
            )
            return False
        error: ClientProtocolError | ClientDisconnected | None = None
        # A hang-up cancels the connection's scope (the watcher's), so the handler and this
        # connection end with a Cancelled that leaves through here.
        if exchange.head.get("upgrade") is None:
            # An upgrade request's handler takes the stream over: nobody else may read it.
            self._watched = exchange
            if self.proto.body_done:
                self.watch_hang_up(exchange)
        try:
            await handler(exchange)
        except (ClientProtocolError, ClientDisconnected) as exc:
            error = exc
        except Exception:
            # A bug in a handler must cost one request, never the server.
            log.exception("server.handler.crashed path=%s", exchange.head.path)
            error = ClientProtocolError("internal error in trio-pool (see its log)", 500)
        finally:
            self._watched = None
            self._armed = False
        if self._watch_scope is not None:
            # The watcher is reading: stop it, and wait until it has left the stream (trio
            # refuses two readers at once, and the next head is read right after this).
            self._watch_scope.cancel()
            await self._watch_ended.park()
        if isinstance(error, ClientProtocolError) and not exchange.response_started:
            await self._send_error(error.status_hint, str(error), exchange.head)
        if error is not None:
            return False
        if exchange.detached:
            self.detached = True
            return False
        if self._eof:
            return False
        if not exchange.response_started:
            log.error("server.handler.no_response path=%s", exchange.head.path)
            await self._send_error(500, "the handler produced no response", exchange.head)
            return False
        if not self.proto.response_done:
            # The handler stopped mid-response (it was cancelled or failed): the client must
            # see a broken message, not a short one that looks complete.
            return False
        if not exchange.body_complete:
            return await self._drain_body(exchange)
        return True

    async def _drain_body(self, exchange: Exchange) -> bool:
        """Read and discard a request body the handler did not read, so the connection can be reused."""
        with trio.move_on_after(self.limits.head_timeout_s):
            try:
                while await exchange.receive_chunk():
                    pass
            except (ClientProtocolError, ClientDisconnected):
                return False
            return True
        return False

    def watch_hang_up(self, exchange: Exchange) -> None:
        """The request body is read: from now on a client hang-up cancels the handler."""
        watched = self._watched
        if watched is exchange:
            # A flag as well as the wake-up: the watcher may not have reached park() yet
            # (a connection's first request can be read before its helpers first run).
            # A watcher that is sleeping out an earlier request's delay is not woken: it
            # looks at the flag when it wakes (so a busy connection costs no task switch
            # per request, one wake-up per delay at most).
            self._armed = True
            self._armed_at = trio.current_time()
            self._hang_up_lot.unpark()

    async def _watch_hang_ups(self) -> None:
        """The connection's watcher: while a handler runs after its request body was read
        (and the delay has passed), read the socket, so that a client hang-up cancels the
        handler at once (not at its next write). Bytes that arrive meanwhile are the next
        request's; they are kept."""
        proto = self.proto
        delay_s = self.limits.hang_up_watch_delay_s
        while True:
            watched = self._watched
            if not self._armed or watched is None:
                self._armed = False  # a handler that ended before this task ran
                await self._hang_up_lot.park()
                continue
            due = self._armed_at + delay_s
            if trio.current_time() < due:
                # Not cancelled when the handler ends first (a cancellation costs more than
                # the wake-up): on waking, the flags say whether anything is left to watch.
                await trio.sleep_until(due)
                continue
            self._armed = False
            exchange = watched
            with trio.CancelScope() as self._watch_scope:
                while len(proto.buffer) < MAX_PIPELINED_BYTES:
                    try:
                        await self._wait_readable()
                        data = await self.stream.receive_some(READ_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                        data = b""
                    proto.receive_data(bytes(data))
                    if not data:
                        log.debug("server.client.disconnected path=%s", exchange.head.path)
                        if self._watched is exchange and self._hang_up_scope is not None:
                            self._hang_up_scope.cancel()
                        break
            self._watch_scope = None
            self._watch_ended.unpark_all()

    async def _send_error(self, status: int, message: str, head: RequestHead | None) -> None:
        proto = self.proto
        if not proto.may_respond:
            return
        headers, body = self.error_body(status, message, head)
        headers = [*headers, ("content-length", str(len(body))), ("connection", "close")]
        log.info("server.request.refused status=%d reason=%s", status, message)
        try:
            data = proto.response_head(status, headers)
            if head is None or head.method != "HEAD":
                data += proto.body(body)
            await self.write(data + proto.end())
        except (ClientDisconnected, SendError):
            pass
