"""The real connector on loopback: TLS with a throwaway CA (trustme), the HTTPS_PROXY path
through a tiny CONNECT proxy in the test (HTTP and WebSocket), and connect failures."""

from __future__ import annotations

import base64
import socket
import ssl
from functools import partial

import attrs
import h11
import pytest
import trio
import trio_websocket

from tests.upstream.conftest import Tls
from trio_pool.errors import UpstreamConnectError
from trio_pool.server.connection import Exchange, ServerLimits
from trio_pool.server.server import Shutdown, serve_listeners
from trio_pool.upstream.client import UpstreamClient
from trio_pool.upstream.connect import NetworkConnector, Origin, OutboundProxy
from trio_pool.upstream.websocket import open_socket


async def hello(exchange: Exchange) -> None:
    await exchange.respond(200, [("content-type", "text/plain")], b"hello over tls")


async def serve_https(nursery: trio.Nursery, tls: Tls) -> int:
    """An HTTPS server (our own server loop under trio.SSLListener); its port."""
    tcp = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = [
        trio.SSLListener(tcp, tls.server, https_compatible=True)
    ]
    limits = ServerLimits(head_timeout_s=5, keepalive_idle_s=5)
    await nursery.start(
        partial(serve_listeners, hello, listeners, limits=limits, shutdown=Shutdown())
    )
    return int(tcp.socket.getsockname()[1])


@attrs.define(eq=False)
class TunnelProxy:
    """A CONNECT-only proxy: maps "name:port" targets to loopback ports and pipes bytes."""

    routes: dict[str, int]
    refuse: int | None = None
    seen: list[tuple[str, dict[bytes, bytes]]] = attrs.field(factory=list)

    async def handle(self, client: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await client.receive_some(65536))
            elif isinstance(event, h11.Request):
                break
            else:
                await client.aclose()
                return
        target = event.target.decode()
        self.seen.append((target, dict(event.headers)))
        port = self.routes.get(target)
        if self.refuse is not None or event.method != b"CONNECT" or port is None:
            status = self.refuse or 502
            await client.send_all(
                conn.send(h11.Response(status_code=status, headers=[("content-length", "0")]))
            )
            await client.aclose()
            return
        upstream = await trio.open_tcp_stream("127.0.0.1", port)
        await client.send_all(conn.send(h11.Response(status_code=200, headers=[])))
        async with client, upstream, trio.open_nursery() as nursery:
            nursery.start_soon(self.pipe, client, upstream, nursery.cancel_scope)
            nursery.start_soon(self.pipe, upstream, client, nursery.cancel_scope)

    @staticmethod
    async def pipe(source: trio.abc.Stream, sink: trio.abc.Stream, scope: trio.CancelScope) -> None:
        try:
            while data := await source.receive_some(65536):
                await sink.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()


async def serve_proxy(nursery: trio.Nursery, proxy: TunnelProxy) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, proxy.handle, 0, host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


async def test_tls_is_verified_against_the_trusted_ca(nursery: trio.Nursery, tls: Tls) -> None:
    """An HTTPS upstream whose certificate the context trusts answers through the client."""
    port = await serve_https(nursery, tls)
    client = UpstreamClient(connector=NetworkConnector(tls.client, proxies={}))
    with trio.fail_after(10):
        status, _headers, body = await client.request("GET", f"https://127.0.0.1:{port}/", [])
        await client.aclose()
    assert (status, body) == (200, b"hello over tls")


async def test_a_certificate_the_system_does_not_trust_is_a_connect_error(
    nursery: trio.Nursery, tls: Tls
) -> None:
    """TLS verification failure (the system store does not know the test CA) is
    UpstreamConnectError saying so."""
    port = await serve_https(nursery, tls)
    client = UpstreamClient(connector=NetworkConnector(proxies={}))
    with (
        trio.fail_after(10),
        pytest.raises(UpstreamConnectError, match="certificate verification failed"),
    ):
        await client.request("GET", f"https://127.0.0.1:{port}/", [])


async def test_a_refused_connection_is_a_connect_error() -> None:
    """A port nobody listens on is UpstreamConnectError naming the origin."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = UpstreamClient(connector=NetworkConnector(proxies={}))
    with (
        trio.fail_after(10),
        pytest.raises(UpstreamConnectError, match=f"cannot connect to http://127.0.0.1:{port}"),
    ):
        await client.request("GET", f"http://127.0.0.1:{port}/", [])


async def test_https_goes_through_the_proxy_with_connect(nursery: trio.Nursery, tls: Tls) -> None:
    """With HTTPS_PROXY set, the client asks the proxy for a tunnel (with the proxy's
    credentials) and speaks TLS to the origin through it."""
    port = await serve_https(nursery, tls)
    proxy = TunnelProxy({"upstream.test:443": port})
    proxy_port = await serve_proxy(nursery, proxy)
    proxies = {"https": f"http://user:p%40ss@127.0.0.1:{proxy_port}"}
    client = UpstreamClient(connector=NetworkConnector(tls.client, proxies=proxies))
    with trio.fail_after(10):
        status, _headers, body = await client.request("GET", "https://upstream.test/hi", [])
        await client.aclose()
    assert (status, body) == (200, b"hello over tls")
    [(target, headers)] = proxy.seen
    assert target == "upstream.test:443"
    assert headers[b"proxy-authorization"] == b"Basic " + base64.b64encode(b"user:p@ss")


async def test_a_proxy_that_refuses_the_tunnel_is_a_connect_error(
    nursery: trio.Nursery, tls: Tls
) -> None:
    """A proxy answering CONNECT with 407 is UpstreamConnectError naming the status."""
    proxy_port = await serve_proxy(nursery, TunnelProxy({}, refuse=407))
    proxies = {"https": f"http://127.0.0.1:{proxy_port}"}
    client = UpstreamClient(connector=NetworkConnector(tls.client, proxies=proxies))
    with (
        trio.fail_after(10),
        pytest.raises(
            UpstreamConnectError, match=r"refused a tunnel to https://upstream\.test: 407"
        ),
    ):
        await client.request("GET", "https://upstream.test/hi", [])


async def test_an_outbound_websocket_goes_through_the_proxy(
    nursery: trio.Nursery, tls: Tls
) -> None:
    """wss:// sockets open their stream through the same connector: CONNECT, then TLS."""

    async def echo(request: trio_websocket.WebSocketRequest) -> None:
        ws = await request.accept()
        await ws.send_message(await ws.get_message())

    server = await nursery.start(
        partial(trio_websocket.serve_websocket, echo, "127.0.0.1", 0, tls.server)
    )
    proxy = TunnelProxy({"ws.test:443": server.port})
    proxy_port = await serve_proxy(nursery, proxy)
    connector = NetworkConnector(tls.client, proxies={"https": f"http://127.0.0.1:{proxy_port}"})
    with trio.fail_after(10):
        async with open_socket("wss://ws.test/v1/realtime?x=1", [], connector=connector) as ws:
            assert await ws.send("ping")
            assert await ws.receive() == "ping"
    assert [target for target, _ in proxy.seen] == ["ws.test:443"]


def test_no_proxy_and_loopback_hosts_go_direct() -> None:
    """NO_PROXY names and loopback hosts bypass the proxy; the proxy's password stays out of
    its repr."""
    proxies = {"https": "http://me:secret@proxy.internal:3128", "no": "example.com"}
    connector = NetworkConnector(ssl.create_default_context(), proxies=proxies)
    assert connector.proxy_for(Origin("https", "api.example.com", 443)) is None
    assert connector.proxy_for(Origin("https", "127.0.0.1", 8443)) is None
    chosen = connector.proxy_for(Origin("https", "api.anthropic.com", 443))
    assert isinstance(chosen, OutboundProxy)
    assert (chosen.host, chosen.port) == ("proxy.internal", 3128)
    assert "secret" not in repr(chosen)
    assert connector.proxy_for(Origin("http", "api.anthropic.com", 80)) is None
