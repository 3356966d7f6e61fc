"""A TCP relay between one trio-pool host and PostgreSQL, which a test can cut.

``cut()`` closes every relayed connection and refuses new ones (accepted and closed at
once: the host sees its engine go away, as when PostgreSQL restarts or a network path
resets); ``restore()`` lets connections through again. One relay per host, so a test can
cut one host off while the others keep their engine.
"""

from __future__ import annotations

import trio


class Relay:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.up = True
        self._scopes: set[trio.CancelScope] = set()
        self.connections = 0

    def cut(self) -> None:
        self.up = False
        for scope in list(self._scopes):
            scope.cancel()

    def restore(self) -> None:
        self.up = True

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            task_status.started(self.port)
            await trio.serve_listeners(self._handle, listeners, handler_nursery=nursery)

    async def _handle(self, client: trio.SocketStream) -> None:
        async with client:
            if not self.up:
                return
            try:
                server = await trio.open_tcp_stream(*self.target)
            except OSError:
                return
            self.connections += 1
            async with server:
                with trio.CancelScope() as scope:
                    self._scopes.add(scope)
                    try:
                        async with trio.open_nursery() as nursery:
                            nursery.start_soon(_pump, client, server, nursery.cancel_scope)
                            nursery.start_soon(_pump, server, client, nursery.cancel_scope)
                    finally:
                        self._scopes.discard(scope)


async def _pump(
    source: trio.SocketStream, sink: trio.SocketStream, scope: trio.CancelScope
) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()
