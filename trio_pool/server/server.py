"""The accept loop and graceful shutdown.

Listeners and handlers live in separate nurseries: on shutdown we stop accepting at once, let
in-flight responses run until the grace deadline (streams registered with ``Shutdown`` end
themselves with the provider's in-stream error at that deadline), then cancel what is left.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import count

import trio

from trio_pool.logs import bind
from trio_pool.server.connection import (
    ErrorBody,
    Handler,
    HTTPConnection,
    ServerLimits,
    plain_error_body,
)

log = logging.getLogger(__name__)

# After the grace deadline, streams get this long to write their closing error event.
FINAL_WRITE_S = 1.0


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

    @contextmanager
    def stream_scope(self) -> Iterator[trio.CancelScope]:
        """A scope that a streaming relay runs in; it expires at the grace deadline."""
        scope = trio.CancelScope(deadline=self.grace_deadline)
        self._stream_scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._stream_scopes.discard(scope)


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

    async def handle(stream: trio.abc.Stream) -> None:
        conn_id = next(conn_ids)
        peer = ""
        if isinstance(stream, trio.SocketStream):
            try:
                host, port = stream.socket.getpeername()[:2]
                peer = f"{host}:{port}"
            except OSError:
                pass
        bind(conn=str(conn_id))
        connection = HTTPConnection(stream, limits, peer=peer, error_body=error_body)
        await connection.serve(handler, shutdown.requested)

    try:
        async with trio.open_nursery() as handler_nursery:
            async with trio.open_nursery() as accept_nursery:
                for listener in listeners:
                    accept_nursery.start_soon(_accept_loop, listener, handle, handler_nursery)
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


async def _accept_loop(
    listener: trio.abc.Listener[trio.abc.Stream],
    handle: Callable[[trio.abc.Stream], Awaitable[None]],
    handler_nursery: trio.Nursery,
) -> None:
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            # EMFILE and friends: log and keep serving the connections we have.
            log.warning("server.accept.failed error=%s", exc)
            await trio.sleep(0.1)
            continue
        handler_nursery.start_soon(handle, stream)
