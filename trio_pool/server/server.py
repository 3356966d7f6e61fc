"""The accept loop and graceful shutdown.

Listeners and handlers live in separate nurseries: on shutdown we stop accepting at once, let
in-flight responses run until the grace deadline (streams registered with ``Shutdown`` end
themselves with the provider's in-stream error at that deadline), then cancel what is left.
"""

from __future__ import annotations

import errno
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from itertools import count
from types import TracebackType

import trio

from trio_pool.logs import bind
from trio_pool.server.connection import (
    ClientDisconnected,
    ErrorBody,
    Handler,
    HTTPConnection,
    ServerLimits,
    plain_error_body,
)
from trio_pool.server.deadlines import ReadDeadlines

log = logging.getLogger(__name__)

# After the grace deadline, streams get this long to write their closing error event.
FINAL_WRITE_S = 1.0
# Out of descriptors or memory: the only accept errors worth waiting out (the set trio's own
# serve_listeners retries); any other error means the listener itself is broken.
ACCEPT_CAPACITY_ERRNOS = frozenset(
    code
    for code in (
        getattr(errno, "EMFILE", None),
        getattr(errno, "ENFILE", None),
        getattr(errno, "ENOMEM", None),
        getattr(errno, "ENOBUFS", None),
    )
    if code is not None
)
ACCEPT_RETRY_S = 0.1
ACCEPT_LOG_EVERY_S = 10.0


class LogThrottle:
    """At most one log line per ``every_s``; counts the ones it held back."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._next_at = -math.inf
        self.suppressed = 0

    def ready(self, now: float) -> int | None:
        """None: stay quiet. Else log now, mentioning the returned count of held-back lines."""
        if now < self._next_at:
            self.suppressed += 1
            return None
        self._next_at = now + self.every_s
        held, self.suppressed = self.suppressed, 0
        return held


class Shutdown:
    """Shared shutdown state: ``begin`` once, streams and connections react."""

    def __init__(self) -> None:
        self.requested = trio.Event()
        self.grace_deadline = math.inf
        self._stream_scopes: set[trio.CancelScope] = set()

    def begin(self, grace_s: float) -> None:
        if self.requested.is_set():
            return
        self.grace_deadline = trio.current_time() + grace_s
        for scope in self._stream_scopes:
            scope.deadline = min(scope.deadline, self.grace_deadline)
        self.requested.set()

    def stream_scope(self) -> _StreamScope:
        """A scope that a streaming relay runs in; it expires at the grace deadline."""
        return _StreamScope(self._stream_scopes, trio.CancelScope(deadline=self.grace_deadline))


class _StreamScope:
    """``with shutdown.stream_scope() as scope:``, registered while it runs (a class, not a
    @contextmanager generator: every proxied answer enters one)."""

    __slots__ = ("_scope", "_scopes")

    def __init__(self, scopes: set[trio.CancelScope], scope: trio.CancelScope) -> None:
        self._scopes, self._scope = scopes, scope

    def __enter__(self) -> trio.CancelScope:
        self._scopes.add(self._scope)
        return self._scope.__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        self._scopes.discard(self._scope)
        return self._scope.__exit__(kind, exc, tb)


async def serve_http(
    handler: Handler,
    *,
    host: str,
    port: int,
    limits: ServerLimits,
    shutdown: Shutdown,
    error_body: ErrorBody = plain_error_body,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve HTTP on host:port until ``shutdown`` is requested and in-flight work is done."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    await serve_listeners(
        handler,
        listeners,
        limits=limits,
        shutdown=shutdown,
        error_body=error_body,
        task_status=task_status,
    )


async def serve_listeners(
    handler: Handler,
    listeners: list[trio.SocketListener] | list[trio.abc.Listener[trio.abc.Stream]],
    *,
    limits: ServerLimits,
    shutdown: Shutdown,
    error_body: ErrorBody = plain_error_body,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    addresses: list[tuple[str, int]] = []
    for listener in listeners:
        if isinstance(listener, trio.SocketListener):
            sockname = listener.socket.getsockname()
            addresses.append((sockname[0], sockname[1]))
    conn_ids = count(1)
    # A cap on open connections (0: none); the accept loops take a slot before accepting.
    cap = limits.max_connections if limits.max_connections > 0 else math.inf
    slots = trio.CapacityLimiter(cap)
    idle_deadlines = ReadDeadlines()  # every connection's wait for its next request

    async def handle(stream: trio.abc.Stream, slot: object) -> None:
        conn_id = next(conn_ids)
        try:
            bind(conn=str(conn_id))
            await _serve_guarded(handler, stream, limits, shutdown, error_body, idle_deadlines)
        finally:
            slots.release_on_behalf_of(slot)

    try:
        async with trio.open_nursery() as handler_nursery:
            async with trio.open_nursery() as accept_nursery:
                for listener in listeners:
                    accept_nursery.start_soon(
                        _accept_loop, listener, handle, handler_nursery, slots
                    )
                task_status.started(addresses)
                await shutdown.requested.wait()
                accept_nursery.cancel_scope.cancel()
            await _close_all(listeners)
            log.info("server.shutdown.accepting_stopped")
            handler_nursery.cancel_scope.deadline = shutdown.grace_deadline + FINAL_WRITE_S
    finally:
        # Also when we are cancelled rather than shut down (tests, a crash elsewhere).
        await _close_all(listeners)


async def _close_all(listeners: Sequence[trio.abc.AsyncResource]) -> None:
    with trio.CancelScope(shield=True):
        for listener in listeners:
            await listener.aclose()


async def _serve_guarded(
    handler: Handler,
    stream: trio.abc.Stream,
    limits: ServerLimits,
    shutdown: Shutdown,
    error_body: ErrorBody,
    idle_deadlines: ReadDeadlines | None = None,
) -> None:
    """One connection, from accept to close. Nothing raised here may leave this task: an
    error in one connection (a reset, a bug) costs that connection, never the server."""
    peer = ""
    if isinstance(stream, trio.SocketStream):
        try:
            host, port = stream.socket.getpeername()[:2]
            peer = f"{host}:{port}"
        except OSError:
            pass  # already reset: serve() finds out at its first read
    connection = HTTPConnection(
        stream, limits, peer=peer, error_body=error_body, idle_deadlines=idle_deadlines
    )
    try:
        await connection.serve(handler, shutdown.requested)
    except* (ClientDisconnected, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        # The peer reset or closed the socket at a moment serve() did not expect it.
        log.debug("server.connection.reset peer=%s", peer)
    except* Exception:
        # A bug: log it with its traceback and drop this connection only. (Cancelled is a
        # BaseException and passes through: shutdown still ends every connection.)
        log.exception("server.connection.crashed peer=%s", peer)
    finally:
        # serve() closes the stream on a normal end (and a WebSocket handler closes the one
        # it took over); this covers the paths where it did not. Closing twice is harmless.
        await trio.aclose_forcefully(stream)


async def _accept_loop(
    listener: trio.abc.Listener[trio.abc.Stream],
    handle: Callable[[trio.abc.Stream, object], Awaitable[None]],
    handler_nursery: trio.Nursery,
    slots: trio.CapacityLimiter,
) -> None:
    throttle = LogThrottle(ACCEPT_LOG_EVERY_S)
    while True:
        # At the cap, wait for a connection to end: new clients queue in the kernel's
        # backlog, and the descriptors in reserve stay free for upstreams and files.
        slot = object()
        await slots.acquire_on_behalf_of(slot)
        try:
            stream = await listener.accept()
        except OSError as exc:
            slots.release_on_behalf_of(slot)
            if exc.errno not in ACCEPT_CAPACITY_ERRNOS:
                raise
            held = throttle.ready(trio.current_time())
            if held is not None:
                log.warning(
                    "server.accept.failed error=%s held_back=%d (lower max_connections, "
                    "or raise the open-files limit)",
                    exc,
                    held,
                )
            await trio.sleep(ACCEPT_RETRY_S)
            continue
        except BaseException:
            slots.release_on_behalf_of(slot)
            raise
        handler_nursery.start_soon(handle, stream, slot)
