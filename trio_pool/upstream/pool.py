"""A keep-alive pool of httpcore connections, per origin, that checks only what it reuses.

httpcore's own ``AsyncConnectionPool`` re-examines every open connection (one ``poll``
system call each, plus a scan that grows with the square of the pool) at the start and end
of every request. With 64 streams open that was most of the proxy's CPU (bench/). Here each
origin keeps a stack of idle ``httpcore.AsyncHTTPConnection``s; a request takes the most
recently used one and checks that one alone. httpcore still does HTTP/1.1, TLS and timeouts.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpcore

MAX_IDLE_PER_ORIGIN = 100

OriginKey = tuple[bytes, bytes, int]


def _key(origin: httpcore.Origin) -> OriginKey:
    return (origin.scheme, origin.host, origin.port)  # httpcore.Origin is not hashable


class OriginPool:
    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext,
        keepalive_expiry: float,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._ssl = ssl_context
        self._expiry = keepalive_expiry
        self._backend = network_backend
        self._idle: dict[OriginKey, list[httpcore.AsyncHTTPConnection]] = {}
        self._closed = False

    async def _acquire(self, origin: httpcore.Origin) -> httpcore.AsyncHTTPConnection:
        idle = self._idle.get(_key(origin))
        while idle:
            connection = idle.pop()
            # has_expired also notices a server that closed the connection while it sat idle.
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        return httpcore.AsyncHTTPConnection(
            origin,
            ssl_context=self._ssl,
            keepalive_expiry=self._expiry,
            network_backend=self._backend,
        )

    def _release(self, origin: httpcore.Origin, connection: httpcore.AsyncHTTPConnection) -> bool:
        """Keep a connection that finished its response cleanly; False if it must be closed."""
        if self._closed or not connection.is_idle():
            return False
        idle = self._idle.setdefault(_key(origin), [])
        if len(idle) >= MAX_IDLE_PER_ORIGIN:
            return False
        idle.append(connection)
        return True

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        origin = request.url.origin
        connection = await self._acquire(origin)
        try:
            response = await connection.handle_async_request(request)
        except BaseException:
            await connection.aclose()
            raise
        return httpcore.Response(
            status=response.status,
            headers=response.headers,
            content=_ReleasingStream(self, origin, connection, response),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()


class _ReleasingStream:
    """The response body; closing it hands the connection back to the pool (or closes it)."""

    def __init__(
        self,
        pool: OriginPool,
        origin: httpcore.Origin,
        connection: httpcore.AsyncHTTPConnection,
        response: httpcore.Response,
    ) -> None:
        self._pool = pool
        self._origin = origin
        self._connection = connection
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_stream():
            yield chunk

    async def aclose(self) -> None:
        try:
            # A body not read to its end leaves the connection unusable; httpcore closes it.
            await self._response.aclose()
        finally:
            if not self._pool._release(self._origin, self._connection):
                await self._connection.aclose()
