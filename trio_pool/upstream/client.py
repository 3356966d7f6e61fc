"""Outbound HTTP/1.1: our own small client (upstream/http1.py), with keep-alive per origin.

One request is: take an idle connection of the origin (or open one through the connector,
within the connect timeout), send the request and read the response head (within the
first-byte timeout), then hand the body out one socket read at a time (each read within
the idle timeout). Low-level errors become ``UpstreamError`` subclasses in
upstream/errors.py and nowhere else.

A pooled connection the server closed while it sat idle fails before any byte of the
answer; such a request is sent once more on a fresh connection (a bytes body can be sent
again; a streamed one only if none of it was taken yet).
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import AsyncIterable
from types import TracebackType

import attrs
import trio

from trio_pool.errors import UpstreamProtocolError
from trio_pool.server.deadlines import ReadDeadlines
from trio_pool.server.messages import Headers
from trio_pool.upstream.body import BodyReader
from trio_pool.upstream.connect import Connector, NetworkConnector, Origin
from trio_pool.upstream.connect import make_ssl_context as make_ssl_context  # re-exported
from trio_pool.upstream.connection import UpstreamConnection
from trio_pool.upstream.errors import NoAnswerError, Phase, map_errors
from trio_pool.upstream.http1 import OutboundRequest, ResponseHead, encode_request
from trio_pool.upstream.pool import OriginPool

log = logging.getLogger(__name__)

# One regex checks the encoded fields at once, with h11's rules (h11/_abnf.py: a token name;
# a value of visible or obs-text bytes, inner spaces and tabs allowed, no NUL, CR, LF or
# other whitespace). A bad value is refused without quoting it: it may be a token.
# Possessive quantifiers: the classes are disjoint, so nothing is ever worth backtracking.
_FIELD_VALUE = r"(?:[^\x00\t\n\v\f\r ]++(?:[ \t]++[^\x00\t\n\v\f\r ]++)*+)?+"
_TOKEN = r"[-!#$%&'*+.^_`|~0-9a-zA-Z]++"
_FIELD_LINES = re.compile(rf"(?:{_TOKEN}: {_FIELD_VALUE}\r\n)*+".encode())
_NAME = re.compile(_TOKEN)
_VALUE = re.compile(_FIELD_VALUE)
# scheme://authority, then the request target (path and query; the fragment is not sent).
_URL = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/?#]*)([^#]*)")
MAX_CACHED_ORIGINS = 256


@attrs.frozen
class Timeouts:
    connect_s: float = 10.0
    first_byte_s: float = 120.0
    idle_s: float = 300.0


@attrs.define(eq=False)
class UpstreamResponse:
    status: int
    headers: Headers
    _connection: UpstreamConnection
    _idle_s: float
    _where: str
    _deadlines: ReadDeadlines | None = None

    def iter_chunks(self) -> BodyReader:
        """The body, one item per socket read with every byte that read delivered; a silence
        longer than idle_s is UpstreamTimeout. Iterate it once."""
        return self._connection.body_blocks(self._idle_s, self._where, self._deadlines)

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


def build_request(
    method: str,
    origin: Origin,
    target: str,
    headers: Headers | list[tuple[str, str]],
    body: bytes | AsyncIterable[bytes],
    where: str,
) -> OutboundRequest:
    """The request head: Host and framing added when missing, every header checked once."""
    out = list(headers)
    names = {k for k, _ in out}
    if "host" not in names:
        out.insert(0, ("host", origin.host_header))
    if isinstance(body, bytes):
        if "content-length" not in names and (body or method not in ("GET", "HEAD")):
            out.append(("content-length", str(len(body))))
    elif "content-length" not in names and "transfer-encoding" not in names:
        out.append(("transfer-encoding", "chunked"))
    try:
        request = encode_request(method, target, out)
    except UnicodeEncodeError:
        raise _bad_header(out, where) from None
    # The fields lie between the request line and the final CRLF. Two things would pass for
    # good lines there: a CR or LF inside a value (the counts rule them out) and a colon in
    # a name (ruled out by name).
    head, lines = request.head, len(out) + 2
    if (
        ":" in "".join(names)
        or head.count(b"\n") != lines
        or head.count(b"\r") != lines
        or _FIELD_LINES.fullmatch(head, head.index(b"\r\n") + 2, len(head) - 2) is None
    ):
        raise _bad_header(out, where)
    return request


def _bad_header(headers: list[tuple[str, str]], where: str) -> UpstreamProtocolError:
    """The refusal naming the first bad header (never its value)."""
    name = next((k for k, v in headers if not _sendable(k, v)), "?")
    return UpstreamProtocolError(
        f"cannot send header {name[:60]!r} to {where}: its name or value has characters "
        "HTTP does not allow (check the account's credentials)"
    )


def _sendable(name: str, value: str) -> bool:
    try:
        name.encode("latin-1")
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return _NAME.fullmatch(name) is not None and _VALUE.fullmatch(value) is not None


class UpstreamClient(trio.abc.AsyncResource):
    """Pooled keep-alive connections to the providers, direct or through HTTPS_PROXY.

    ``async with UpstreamClient() as client:`` closes the pooled connections at the end."""

    def __init__(
        self,
        timeouts: Timeouts = Timeouts(),
        *,
        connector: Connector | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeouts = timeouts
        # The outbound WebSockets open their streams through the same connector.
        self.connector: Connector = connector or NetworkConnector(ssl_context)
        self._pool = OriginPool(self.connector)
        self._deadlines = ReadDeadlines()
        self._origins: dict[str, tuple[Origin, str]] = {}

    def _locate(self, url: str) -> tuple[Origin, str, str]:
        """(origin, its text for messages, request target) of an absolute URL."""
        match = _URL.match(url)
        if match is None:
            raise ValueError(f"not an absolute URL: {url.split('?', 1)[0]!r}")
        base, target = match.groups()
        known = self._origins.get(base)
        if known is None:
            origin = Origin.of_url(base)
            known = (origin, str(origin))
            if len(self._origins) >= MAX_CACHED_ORIGINS:
                self._origins.clear()
            self._origins[base] = known
        if not target.startswith("/"):
            target = "/" + target
        return known[0], known[1], target

    def stream(
        self,
        method: str,
        url: str,
        headers: Headers | list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes] = b"",
    ) -> _Streaming:
        """``async with client.stream(...) as response:`` sends the request and gives the
        response once its head arrived (within first_byte_s).

        Leaving the block closes the response: a connection whose body was read to its end
        goes back to the pool; otherwise (a cancelled caller, a client hang-up) it is closed
        at once instead of reading the rest of the body.
        """
        return _Streaming(self, method, url, headers, body)

    async def _open(
        self,
        method: str,
        url: str,
        headers: Headers | list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes],
    ) -> UpstreamResponse:
        origin, where, target = self._locate(url)
        request = build_request(method, origin, target, headers, body, where)
        with map_errors(where, Phase.HEAD, self.timeouts.first_byte_s):
            connection, head = await self._exchange(origin, where, request, body)
        return UpstreamResponse(
            status=head.status,
            headers=head.headers,
            connection=connection,
            idle_s=self.timeouts.idle_s,
            where=where,
            deadlines=self._deadlines,
        )

    async def _close(self, response: UpstreamResponse) -> None:
        connection = response._connection
        if not self._pool.release(connection):
            with trio.CancelScope(shield=True):
                await connection.aclose()

    async def _exchange(
        self,
        origin: Origin,
        where: str,
        request: OutboundRequest,
        body: bytes | AsyncIterable[bytes],
    ) -> tuple[UpstreamConnection, ResponseHead]:
        t = self.timeouts
        connection, stale = self._pool.take_idle(origin)
        if stale:
            with trio.CancelScope(shield=True):
                for old in stale:
                    await old.aclose()
        while True:
            fresh = connection is None
            if connection is None:
                with map_errors(where, Phase.CONNECT, t.connect_s), trio.fail_after(t.connect_s):
                    connection = await self._pool.open(origin)
            answered = False
            try:
                if connection.expirable and isinstance(body, bytes):
                    # Within first_byte_s without a cancel scope (server/deadlines.py):
                    # at the deadline the connection is closed under the wait.
                    self._deadlines.add(connection, t.first_byte_s)
                    try:
                        await connection.send_request(request, body)
                        head = await connection.read_head()
                    except Exception:
                        if connection.late:
                            raise trio.TooSlowError from None
                        raise
                    finally:
                        self._deadlines.discard(connection)
                    if connection.late:
                        # Expired after its last wait (TLS can finish a head from bytes it
                        # already holds): the socket under it is closed all the same.
                        raise trio.TooSlowError
                else:
                    # A streamed body is read from the client meanwhile, a wait that closing
                    # the upstream socket would not end: a cancel scope bounds it all.
                    with trio.fail_after(t.first_byte_s):
                        await connection.send_request(request, body)
                        head = await connection.read_head()
                answered = True
                return connection, head
            except NoAnswerError:
                # A pooled connection the server closed while it sat idle: once, on a fresh one.
                if fresh or (connection.pulled_body and not isinstance(body, bytes)):
                    raise
                log.debug("upstream.retry origin=%s reason=idle connection closed", where)
            finally:
                if not answered:
                    with trio.CancelScope(shield=True):
                        await connection.aclose()
            connection = None

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
            await self._pool.aclose()


class _Streaming:
    """The context manager of ``UpstreamClient.stream`` (a class rather than an
    @asynccontextmanager generator: every proxied request enters one)."""

    __slots__ = ("_args", "_client", "_response")

    def __init__(
        self,
        client: UpstreamClient,
        method: str,
        url: str,
        headers: Headers | list[tuple[str, str]],
        body: bytes | AsyncIterable[bytes],
    ) -> None:
        self._client = client
        self._args = (method, url, headers, body)
        self._response: UpstreamResponse | None = None

    async def __aenter__(self) -> UpstreamResponse:
        self._response = await self._client._open(*self._args)
        return self._response

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._response is not None:
            response, self._response = self._response, None
            await self._client._close(response)
