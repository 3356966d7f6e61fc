"""Outbound HTTP: one httpcore connection pool on trio, with our timeouts and error types.

Low-level errors (httpcore, OSError, trio.TooSlowError) are mapped to ``UpstreamError``
subclasses here and nowhere else. Three timeouts apply: connecting, waiting for the response
head (first byte), and the longest silence between two chunks of the body.
"""

from __future__ import annotations

import logging
import ssl
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import attrs
import certifi
import httpcore
import trio

from trio_pool.config import is_loopback
from trio_pool.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from trio_pool.server.messages import Headers, decode_headers, encode_headers
from trio_pool.upstream.pool import OriginPool

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 200
KEEPALIVE_EXPIRY_S = 60.0


@attrs.frozen
class Timeouts:
    connect_s: float = 10.0
    first_byte_s: float = 120.0
    idle_s: float = 300.0


def translate(exc: Exception, url: str) -> UpstreamError | None:
    """Our error for a low-level outbound one, or None when it is not an outbound failure."""
    where = _origin(url)
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, httpcore.ConnectTimeout | httpcore.PoolTimeout):
        return UpstreamTimeout(f"connecting to {where} timed out")
    if isinstance(exc, httpcore.ReadTimeout | httpcore.WriteTimeout | trio.TooSlowError):
        return UpstreamTimeout(f"{where} stopped answering")
    if isinstance(exc, httpcore.ConnectError):
        return UpstreamConnectError(f"cannot connect to {where}: {exc}")
    if isinstance(exc, httpcore.ProxyError):
        return UpstreamConnectError(f"the outbound proxy refused {where}: {exc}")
    if isinstance(exc, httpcore.ProtocolError | httpcore.NetworkError):
        return UpstreamProtocolError(f"{where} broke the connection: {exc or type(exc).__name__}")
    if isinstance(exc, OSError | trio.BrokenResourceError):
        return UpstreamProtocolError(f"{where} broke the connection: {exc}")
    return None


@contextmanager
def map_errors(url: str) -> Iterator[None]:
    """The one boundary where outbound low-level errors become ours (chained with ``from``)."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc, url)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def make_ssl_context() -> ssl.SSLContext:
    """Verify against the system store; fall back to certifi's bundle when the system has none
    (a frozen binary on a minimal system, or macOS without the python.org certificates)."""
    context = ssl.create_default_context()
    if context.cert_store_stats().get("x509_ca", 0) == 0:
        context.load_verify_locations(cafile=certifi.where())
    return context


@attrs.define(eq=False)
class UpstreamResponse:
    status: int
    headers: Headers
    _stream: AsyncIterable[bytes]
    _url: str

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        """Each read from upstream as it arrives; a silence longer than idle_s is UpstreamTimeout."""
        # httpcore's read timeout (set to idle_s) bounds each read; no scope per chunk here.
        iterator = aiter(self._stream)
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except Exception as exc:
                mapped = translate(exc, self._url)
                if mapped is None or mapped is exc:
                    raise
                raise mapped from exc
            if chunk:
                yield chunk

    async def read_all(self, limit: int = 4 * 1024 * 1024) -> bytes:
        """The whole body (error bodies, unary answers), truncated at ``limit`` bytes."""
        parts: list[bytes] = []
        size = 0
        async for chunk in self.iter_chunks():
            parts.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        return b"".join(parts)[:limit]


class _OneChunk:
    """A bytes body as an async iterable that is not an async generator: httpcore wraps bytes
    in one, and a send cancelled half-way (a shutdown) left it to the garbage collector,
    which warns (ResourceWarning) in whatever code runs then."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> _OneChunk:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


class UpstreamClient:
    """Pooled keep-alive connections to the providers, direct or through HTTPS_PROXY."""

    def __init__(
        self,
        timeouts: Timeouts = Timeouts(),
        *,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeouts = timeouts
        self._ssl = ssl_context or make_ssl_context()
        self._backend = network_backend
        self._direct = OriginPool(
            ssl_context=self._ssl,
            keepalive_expiry=KEEPALIVE_EXPIRY_S,
            network_backend=network_backend,
        )
        self._proxies: dict[str, httpcore.AsyncHTTPProxy] = {}
        self._proxy_env = urllib.request.getproxies_environment()

    def _pool_for(self, url: str) -> OriginPool | httpcore.AsyncHTTPProxy:
        scheme, _, rest = url.partition("://")
        host = rest.split("/", 1)[0].rsplit(":", 1)[0].strip("[]")
        proxy_url = self._proxy_env.get(scheme)
        if (
            not proxy_url
            or is_loopback(host)
            # proxy_bypass_environment is public but missing from typeshed.
            or urllib.request.proxy_bypass_environment(host, self._proxy_env)  # type: ignore[attr-defined]
        ):
            return self._direct
        if proxy_url not in self._proxies:
            self._proxies[proxy_url] = httpcore.AsyncHTTPProxy(
                proxy_url=proxy_url,
                ssl_context=self._ssl,
                max_connections=MAX_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
                network_backend=self._backend,
            )
        return self._proxies[proxy_url]

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        headers: Headers | list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> AsyncIterator[UpstreamResponse]:
        """Send a request; yield the response once its head arrived (within first_byte_s).

        Leaving the block closes the response; a cancelled caller (client hang-up) closes the
        upstream connection at once instead of reading the rest of the body.
        """
        t = self.timeouts
        extensions: dict[str, Any] = {
            "timeout": {
                "connect": t.connect_s,
                "read": t.idle_s,
                "write": t.idle_s,
                "pool": t.connect_s,
            }
        }
        # handle_async_request sends exactly these headers: Host and framing are ours to set.
        out = list(headers)
        names = {k for k, _ in out}
        if "host" not in names:
            out.insert(0, ("host", _origin(url).partition("://")[2]))
        if isinstance(body, bytes):
            if "content-length" not in names and (body or method not in ("GET", "HEAD")):
                out.append(("content-length", str(len(body))))
        elif "content-length" not in names and "transfer-encoding" not in names:
            out.append(("transfer-encoding", "chunked"))
        request = httpcore.Request(
            method.encode("ascii"),
            url,
            headers=encode_headers(out),
            content=_OneChunk(body) if isinstance(body, bytes) else body,
            extensions=extensions,
        )
        pool = self._pool_for(url)
        with map_errors(url), trio.fail_after(t.connect_s + t.first_byte_s):
            response = await pool.handle_async_request(request)
        try:
            yield UpstreamResponse(
                status=response.status,
                headers=decode_headers(response.headers),
                stream=response.stream,  # type: ignore[arg-type]
                url=url,
            )
        finally:
            with trio.CancelScope(shield=True), map_errors(url):
                try:
                    await response.aclose()
                except UpstreamError:
                    pass

    async def request(
        self,
        method: str,
        url: str,
        headers: Headers | list[tuple[str, str]],
        body: bytes = b"",
        *,
        limit: int = 4 * 1024 * 1024,
    ) -> tuple[int, Headers, bytes]:
        """A whole request/response (token refresh, usage polls)."""
        async with self.stream(method, url, headers, body) as response:
            return response.status, response.headers, await response.read_all(limit)

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self._direct.aclose()
            for proxy in self._proxies.values():
                await proxy.aclose()
