"""Opening a byte stream to an origin: TCP, the outbound proxy's tunnel, TLS.

A ``Connector`` is any ``async (Origin) -> trio.abc.Stream``. The client and the outbound
WebSockets both open their streams through one, so a test can hand them one end of
``trio.testing.memory_stream_pair()`` and play the upstream on the other end.

``NetworkConnector`` is the real one. It honours ``HTTPS_PROXY`` / ``HTTP_PROXY`` and
``NO_PROXY`` as curl does (read once, when it is built), always through ``CONNECT`` (so the
proxy never sees the request, only the encrypted tunnel), and never for loopback hosts (the
simulators and the dashboard's own calls). TLS is verified against the system store, with
certifi's bundle when the system has none.

Errors are left low-level here (OSError, ssl errors wrapped by trio, h11 errors of the
proxy's answer); the caller maps them once, as the connect phase (upstream/errors.py). A
proxy that answers CONNECT with a refusal is reported as ``UpstreamConnectError`` at once.
"""

from __future__ import annotations

import base64
import os
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping

import attrs
import certifi
import h11
import trio

from trio_pool.config import is_loopback
from trio_pool.errors import UpstreamConnectError

READ_SIZE = 64 * 1024
# A proxy's answer to CONNECT is a short head; anything longer is not a proxy.
MAX_PROXY_HEAD_BYTES = 16 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
# Outbound WebSockets use the HTTP origin of their URL (and so the same proxy rules).
_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


@attrs.frozen
class Origin:
    """Where a connection goes: scheme ("http" or "https"), host (no brackets), port."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of_url(cls, url: str) -> Origin:
        """The origin of an http(s):// or ws(s):// URL; ValueError when it has none."""
        parts = urllib.parse.urlsplit(url)
        scheme = _HTTP_SCHEMES.get(parts.scheme.lower())
        if scheme is None or not parts.hostname:
            raise ValueError(f"not an http(s) or ws(s) URL: {url.split('?', 1)[0]!r}")
        return cls(scheme, parts.hostname, parts.port or DEFAULT_PORTS[scheme])

    @property
    def tls(self) -> bool:
        return self.scheme == "https"

    @property
    def authority(self) -> str:
        """host:port, always with the port (a CONNECT target)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def host_header(self) -> str:
        """The Host header: the port only when it is not the scheme's default."""
        if self.port == DEFAULT_PORTS[self.scheme]:
            return f"[{self.host}]" if ":" in self.host else self.host
        return self.authority

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host_header}"


Connector = Callable[[Origin], Awaitable[trio.abc.Stream]]


def make_ssl_context() -> ssl.SSLContext:
    """Verify against the system store; fall back to certifi's bundle when the system has none
    (a frozen binary on a minimal system, or macOS without the python.org certificates)."""
    context = ssl.create_default_context()
    if context.cert_store_stats().get("x509_ca", 0) == 0:
        context.load_verify_locations(cafile=certifi.where())
    context.set_alpn_protocols(["http/1.1"])
    return context


@attrs.frozen
class OutboundProxy:
    """An HTTP proxy that opens CONNECT tunnels; its credentials never reach a repr."""

    host: str
    port: int
    authorization: str | None = attrs.field(default=None, repr=False)

    @classmethod
    def parse(cls, url: str) -> OutboundProxy:
        if "://" not in url:
            url = "http://" + url  # curl's reading of HTTPS_PROXY=host:port
        parts = urllib.parse.urlsplit(url)
        if parts.scheme.lower() != "http" or not parts.hostname:
            # Only the proxy's address, never its credentials, goes into the message.
            raise UpstreamConnectError(
                f"the outbound proxy {parts.scheme}://{parts.hostname}:{parts.port} is not "
                "supported: set HTTPS_PROXY to an http:// proxy (it tunnels TLS with CONNECT)"
            )
        authorization = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            authorization = f"Basic {token}"
        return cls(parts.hostname, parts.port or 80, authorization)

    def __str__(self) -> str:
        return f"the outbound proxy {self.host}:{self.port}"


async def open_tunnel(stream: trio.abc.Stream, origin: Origin, proxy: OutboundProxy) -> None:
    """Ask the proxy on ``stream`` for a CONNECT tunnel to ``origin``; raise unless it agrees."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_PROXY_HEAD_BYTES)
    headers = [("host", origin.authority)]
    if proxy.authorization is not None:
        headers.append(("proxy-authorization", proxy.authorization))
    request = h11.Request(method="CONNECT", target=origin.authority, headers=headers)
    await stream.send_all(conn.send(request) or b"")
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(READ_SIZE)))
        elif isinstance(event, h11.Response):
            break
        elif not isinstance(event, h11.InformationalResponse):
            raise UpstreamConnectError(f"{proxy} closed the connection instead of answering")
    if not 200 <= event.status_code < 300:
        reason = event.reason.decode("latin-1", "replace")
        raise UpstreamConnectError(
            f"{proxy} refused a tunnel to {origin}: {event.status_code} {reason}".rstrip()
        )
    if conn.trailing_data[0]:
        # The tunnel's first bytes belong to the origin, which speaks only after we do.
        raise UpstreamConnectError(f"{proxy} sent data into the tunnel before it was used")


def _environment_proxies() -> dict[str, str]:
    """urllib's reading of the *_proxy variables. urllib.request (with http.client and the
    email package, about 1 MiB of a proxy's idle RSS) is imported only when one is set."""
    if not any(name.lower().endswith("_proxy") for name in os.environ):
        return {}
    import urllib.request

    return urllib.request.getproxies_environment()


def _bypassed(host: str, proxies: Mapping[str, str]) -> bool:
    """urllib's NO_PROXY rule (only asked when a proxy is set)."""
    import urllib.request

    # proxy_bypass_environment is public but missing from typeshed.
    return bool(urllib.request.proxy_bypass_environment(host, proxies))  # type: ignore[attr-defined]


class NetworkConnector:
    """TCP (direct or through the outbound proxy), then TLS for https origins."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        proxies: Mapping[str, str] | None = None,
    ) -> None:
        self._ssl_context = ssl_context
        # {"https": url, "http": url, "no": "host,.domain"}, as urllib reads the environment.
        self._proxies = dict(_environment_proxies() if proxies is None else proxies)
        self._routes: dict[Origin, OutboundProxy | None] = {}

    @property
    def ssl_context(self) -> ssl.SSLContext:
        # Built on first use: loading the system store takes milliseconds that a command
        # talking only to the local proxy (status, selftest) need not spend.
        if self._ssl_context is None:
            self._ssl_context = make_ssl_context()
        return self._ssl_context

    def proxy_for(self, origin: Origin) -> OutboundProxy | None:
        """The outbound proxy for ``origin`` (None: connect directly); decided once per origin."""
        if origin in self._routes:
            return self._routes[origin]
        url = self._proxies.get(origin.scheme)
        route = None
        if url and not is_loopback(origin.host) and not _bypassed(origin.host, self._proxies):
            route = OutboundProxy.parse(url)
        self._routes[origin] = route
        return route

    async def __call__(self, origin: Origin) -> trio.abc.Stream:
        proxy = self.proxy_for(origin)
        if proxy is None:
            stream: trio.abc.Stream = await trio.open_tcp_stream(origin.host, origin.port)
        else:
            stream = await trio.open_tcp_stream(proxy.host, proxy.port)
        try:
            if proxy is not None:
                await open_tunnel(stream, origin, proxy)
            if origin.tls:
                stream = trio.SSLStream(
                    stream, self.ssl_context, server_hostname=origin.host, https_compatible=True
                )
                # Handshake now, so a certificate problem is a connect error, not a broken read.
                await stream.do_handshake()
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise
        return stream
