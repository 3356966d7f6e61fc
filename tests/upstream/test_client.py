"""The h11 client over memory streams: per-read body blocks, keep-alive, the idle-closed
retry, the three timeouts (MockClock, no real sleeps) and the errors of a broken answer."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
import trio.testing

from tests.upstream.fakes import CHUNKED_HEAD, MemoryConnector, ServerSide, chunk, serve_forever
from trio_pool.errors import UpstreamConnectError, UpstreamProtocolError, UpstreamTimeout
from trio_pool.upstream.client import Timeouts, UpstreamClient
from trio_pool.upstream.connect import Origin
from trio_pool.upstream.pool import KEEPALIVE_EXPIRY_S

URL = "https://api.example.test/v1/messages?beta=true"
TIMEOUTS = Timeouts(connect_s=10, first_byte_s=60, idle_s=30)


def client_for(connector: MemoryConnector) -> UpstreamClient:
    return UpstreamClient(TIMEOUTS, connector=connector)


async def test_each_read_is_one_block_with_all_its_chunks(nursery: trio.Nursery) -> None:
    """Three HTTP chunks that arrive in one read come out as one block, at once (not held
    back for the chunk that follows later)."""
    more = trio.Event()

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.send_raw(
            CHUNKED_HEAD + chunk(b"data: 1\n\n") + chunk(b"data: 2\n\n") + chunk(b"data: 3\n\n")
        )
        await more.wait()
        await conn.send_raw(chunk(b"data: 4\n\n") + b"0\r\n\r\n")

    client = client_for(MemoryConnector(nursery, script))
    with trio.fail_after(5):
        async with client.stream("POST", URL, [], b"{}") as response:
            blocks = response.iter_chunks()
            assert await anext(blocks) == b"data: 1\n\ndata: 2\n\ndata: 3\n\n"
            more.set()
            assert [block async for block in blocks] == [b"data: 4\n\n"]


async def test_the_request_carries_host_framing_and_the_target(nursery: trio.Nursery) -> None:
    """Host and Content-Length are added; the target keeps its query; the origin is https:443."""
    connector = MemoryConnector(nursery, serve_forever)
    client = client_for(connector)
    with trio.fail_after(5):
        status, _headers, body = await client.request("POST", URL, [("x-a", "1")], b"hello")
    assert (status, body) == (200, b"ok")
    request, sent = connector.servers[0].requests[0]
    assert request.target == b"/v1/messages?beta=true"
    assert dict(request.headers)[b"host"] == b"api.example.test"
    assert dict(request.headers)[b"content-length"] == b"5"
    assert sent == b"hello"
    assert connector.origins == [Origin("https", "api.example.test", 443)]


async def test_a_streamed_body_goes_out_chunked(nursery: trio.Nursery) -> None:
    """An async-iterable body is sent with Transfer-Encoding: chunked, every piece of it."""
    connector = MemoryConnector(nursery, serve_forever)

    async def pieces() -> AsyncIterator[bytes]:
        yield b"a" * 10
        yield b"b" * 10

    with trio.fail_after(5):
        await client_for(connector).request("GET", URL, [], b"")  # warm: one connection
        async with client_for(connector).stream("POST", URL, [], pieces()) as response:
            await response.read_all()
    request, sent = connector.servers[-1].requests[0]
    assert dict(request.headers)[b"transfer-encoding"] == b"chunked"
    assert sent == b"a" * 10 + b"b" * 10


async def test_keep_alive_reuses_one_connection(nursery: trio.Nursery) -> None:
    """Requests one after another go over the same connection."""
    connector = MemoryConnector(nursery, serve_forever)
    client = client_for(connector)
    with trio.fail_after(5):
        for _ in range(3):
            assert (await client.request("GET", URL, []))[0] == 200
    assert connector.opened == 1


async def test_an_unfinished_body_closes_the_connection(nursery: trio.Nursery) -> None:
    """Leaving a response before its end closes that connection; the next request opens one."""
    connector = MemoryConnector(nursery, serve_forever)
    client = client_for(connector)

    async def never_ending(index: int, conn: ServerSide) -> None:
        if index == 0:
            await conn.request()
            await conn.send_raw(CHUNKED_HEAD + chunk(b"data: 1\n\n"))
            await conn.wait_closed()
        else:
            await serve_forever(index, conn)

    connector.script = never_ending
    with trio.fail_after(5):
        async with client.stream("GET", URL, []) as response:
            await anext(response.iter_chunks())
        assert (await client.request("GET", URL, []))[0] == 200
    assert connector.opened == 2


async def test_an_idle_closed_connection_is_retried_once_on_a_fresh_one(
    nursery: trio.Nursery,
) -> None:
    """The server closed the pooled connection: the request is sent again, whole, on a new one."""

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.respond(body=b"first" if index == 0 else b"second")
        if index == 0:
            await conn.aclose()
        else:
            await serve_forever(index, conn)

    connector = MemoryConnector(nursery, script)
    client = client_for(connector)
    with trio.fail_after(5):
        assert (await client.request("POST", URL, [], b"one"))[2] == b"first"
        await trio.testing.wait_all_tasks_blocked()
        assert (await client.request("POST", URL, [], b"two"))[2] == b"second"
    assert connector.opened == 2
    assert connector.servers[1].requests[0][1] == b"two"


async def test_the_idle_closed_retry_happens_only_once(nursery: trio.Nursery) -> None:
    """A fresh connection that closes without answering is an error, not another retry."""

    async def script(index: int, conn: ServerSide) -> None:
        if index == 0:
            await conn.request()
            await conn.respond()
        await conn.aclose()

    connector = MemoryConnector(nursery, script)
    client = client_for(connector)
    with trio.fail_after(5):
        await client.request("GET", URL, [])
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(UpstreamProtocolError, match="without answering"):
            await client.request("GET", URL, [])
    assert connector.opened == 2


async def test_a_taken_streamed_body_is_not_sent_twice(nursery: trio.Nursery) -> None:
    """A streamed body already (partly) sent cannot be replayed: no retry, an error."""

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.aclose()

    async def pieces() -> AsyncIterator[bytes]:
        yield b"x"

    connector = MemoryConnector(nursery, script)
    with trio.fail_after(5), pytest.raises(UpstreamProtocolError, match="without answering"):
        async with client_for(connector).stream("POST", URL, [], pieces()):
            pass
    assert connector.opened == 1


async def test_an_expired_idle_connection_is_not_reused(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A connection idle for longer than the keep-alive expiry is closed, not reused."""
    connector = MemoryConnector(nursery, serve_forever)
    client = client_for(connector)
    with trio.fail_after(KEEPALIVE_EXPIRY_S * 2):
        await client.request("GET", URL, [])
        await trio.sleep(KEEPALIVE_EXPIRY_S + 1)
        await client.request("GET", URL, [])
    assert connector.opened == 2


async def test_connect_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A connection that does not open within connect_s is UpstreamTimeout."""

    async def hang(origin: Origin) -> trio.abc.Stream:
        await trio.sleep_forever()
        raise AssertionError

    client = UpstreamClient(TIMEOUTS, connector=hang)
    start = trio.current_time()
    with trio.fail_after(100), pytest.raises(UpstreamTimeout, match=r"connecting to .* timed out"):
        await client.request("GET", URL, [])
    assert trio.current_time() - start == pytest.approx(TIMEOUTS.connect_s)


async def test_first_byte_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """No response head within first_byte_s is UpstreamTimeout, and the connection is closed."""

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.wait_closed()

    connector = MemoryConnector(nursery, script)
    start = trio.current_time()
    with trio.fail_after(100), pytest.raises(UpstreamTimeout, match="timed out: no response head"):
        await client_for(connector).request("GET", URL, [])
    assert trio.current_time() - start == pytest.approx(TIMEOUTS.first_byte_s)


async def test_idle_timeout_in_the_body(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A body that goes silent for idle_s is UpstreamTimeout, after what came before it."""

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.send_raw(CHUNKED_HEAD + chunk(b"data: 1\n\n"))
        await conn.wait_closed()

    connector = MemoryConnector(nursery, script)
    seen: list[bytes] = []

    async def read() -> None:
        async with client_for(connector).stream("GET", URL, []) as response:
            async for block in response.iter_chunks():
                seen.append(block)

    with trio.fail_after(100), pytest.raises(UpstreamTimeout, match="nothing received for 30 s"):
        await read()
    assert seen == [b"data: 1\n\n"]


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n" + b"x" * 10,
        CHUNKED_HEAD + chunk(b"data: 1\n\n") + b"5\r\nab",
    ],
    ids=["content-length", "chunked"],
)
async def test_a_peer_that_closes_mid_body_is_a_protocol_error(
    nursery: trio.Nursery, answer: bytes
) -> None:
    """A body cut before its end (declared length or last chunk) is UpstreamProtocolError."""

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.send_raw(answer)
        await conn.aclose()

    connector = MemoryConnector(nursery, script)
    with (
        trio.fail_after(5),
        pytest.raises(UpstreamProtocolError, match="before the response was complete"),
    ):
        await client_for(connector).request("GET", URL, [])


async def test_a_malformed_response_is_a_protocol_error(nursery: trio.Nursery) -> None:
    """A head that is not HTTP is UpstreamProtocolError."""

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.send_raw(b"HTTP/1.1 two hundred\r\n\r\n")
        await conn.wait_closed()

    connector = MemoryConnector(nursery, script)
    with trio.fail_after(5), pytest.raises(UpstreamProtocolError, match="malformed response"):
        await client_for(connector).request("GET", URL, [])


async def test_a_bad_header_is_refused_without_quoting_its_value(nursery: trio.Nursery) -> None:
    """A header value with a line break (a damaged token) is refused before connecting, and
    the error names the header, never its value."""
    connector = MemoryConnector(nursery, serve_forever)
    headers = [("authorization", "Bearer sk-secret\r\nx-injected: 1")]
    with trio.fail_after(5), pytest.raises(UpstreamProtocolError) as caught:
        await client_for(connector).request("GET", URL, headers)
    assert "authorization" in str(caught.value)
    assert "sk-secret" not in str(caught.value)
    assert connector.opened == 0


async def test_a_connector_failure_is_a_connect_error(nursery: trio.Nursery) -> None:
    """An OSError while connecting is UpstreamConnectError naming the origin."""

    async def refuse(origin: Origin) -> trio.abc.Stream:
        raise ConnectionRefusedError(111, "Connection refused")

    with (
        trio.fail_after(5),
        pytest.raises(UpstreamConnectError, match=r"https://api\.example\.test"),
    ):
        await UpstreamClient(TIMEOUTS, connector=refuse).request("GET", URL, [])


async def test_a_cancelled_caller_closes_the_connection(nursery: trio.Nursery) -> None:
    """A caller cancelled mid-body (a client hang-up) closes the upstream connection at once."""
    closed = trio.Event()

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.send_raw(CHUNKED_HEAD + chunk(b"data: 1\n\n"))
        await conn.wait_closed()
        closed.set()

    client = client_for(MemoryConnector(nursery, script))
    with trio.fail_after(5):
        with trio.CancelScope() as scope:
            async with client.stream("GET", URL, []) as response:
                async for _block in response.iter_chunks():
                    scope.cancel()
        await closed.wait()


async def test_a_chunked_body_read_to_its_end_keeps_the_connection(nursery: trio.Nursery) -> None:
    """After a chunked body (with trailers) read to its end, the connection is reused."""

    async def script(index: int, conn: ServerSide) -> None:
        for n in range(2):
            await conn.request()
            body = chunk(b"data: %d\n\n" % n) + b"0\r\nx-t: 1\r\n\r\n"
            await conn.send_raw(CHUNKED_HEAD + body, whole=True)
        await conn.wait_closed()

    connector = MemoryConnector(nursery, script)
    client = client_for(connector)
    with trio.fail_after(5):
        for n in range(2):
            assert (await client.request("GET", URL, []))[2] == b"data: %d\n\n" % n
    assert connector.opened == 1


async def test_connection_close_from_the_server_is_honoured(nursery: trio.Nursery) -> None:
    """A response that says "Connection: close" is the last on its connection."""

    async def script(index: int, conn: ServerSide) -> None:
        await conn.request()
        head = CHUNKED_HEAD.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n")
        await conn.send_raw(head + chunk(b"data: 1\n\n") + b"0\r\n\r\n")
        await conn.wait_closed()

    connector = MemoryConnector(nursery, script)
    client = client_for(connector)
    with trio.fail_after(5):
        for _ in range(2):
            assert (await client.request("GET", URL, []))[2] == b"data: 1\n\n"
    assert connector.opened == 2
