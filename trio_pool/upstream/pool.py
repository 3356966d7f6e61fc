"""Keep-alive connections, per origin, checked only when reused.

Each origin keeps a stack of idle connections; a request takes the most recently used one
(the one least likely to have been closed by the server) and checks that one alone: its
age, and one ``poll`` that notices a server that closed it while it sat idle. No scan of the
whole pool per request (httpcore's pool did one, and with 64 streams open that was most of
the proxy's CPU, bench/).
"""

from __future__ import annotations

import trio

from trio_pool.upstream.connect import Connector, Origin
from trio_pool.upstream.connection import UpstreamConnection

MAX_IDLE_PER_ORIGIN = 100
# Idle longer than this, a connection is closed instead of reused: servers drop theirs
# after a minute or two, and a request sent into a connection being closed is lost.
KEEPALIVE_EXPIRY_S = 60.0


class OriginPool:
    def __init__(self, connector: Connector, *, keepalive_expiry_s: float = KEEPALIVE_EXPIRY_S):
        self.connector = connector
        self.keepalive_expiry_s = keepalive_expiry_s
        self._idle: dict[Origin, list[UpstreamConnection]] = {}
        self._closed = False

    def take_idle(
        self, origin: Origin
    ) -> tuple[UpstreamConnection | None, list[UpstreamConnection]]:
        """An idle connection worth reusing (or None), and the stale ones to close."""
        idle = self._idle.get(origin)
        stale: list[UpstreamConnection] = []
        if not idle:
            return None, stale
        oldest = trio.current_time() - self.keepalive_expiry_s
        while idle:
            connection = idle.pop()
            if connection.idle_since >= oldest and not connection.looks_dropped():
                return connection, stale
            stale.append(connection)
        return None, stale

    async def open(self, origin: Origin) -> UpstreamConnection:
        """A new connection (the caller bounds the time and maps the errors)."""
        return UpstreamConnection(await self.connector(origin), origin)

    def release(self, connection: UpstreamConnection) -> bool:
        """Keep a connection whose exchange ended cleanly; False when it must be closed."""
        if self._closed or not connection.reusable():
            return False
        idle = self._idle.setdefault(connection.origin, [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            return False
        connection.idle_since = trio.current_time()
        idle.append(connection)
        return True

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()
