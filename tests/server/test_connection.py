"""The h11 server loop over in-memory streams: keep-alive, limits, timeouts, hang-ups."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial

import attrs
import h11
import trio
import trio.testing

from trio_pool.server.connection import Exchange, HTTPConnection, ServerLimits
from trio_pool.server.server import Shutdown, serve_listeners

LIMITS = ServerLimits(max_body_bytes=1000, head_timeout_s=5, keepalive_idle_s=20)


class Client:
    """The client side of a memory stream, speaking h11."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT)

    async def send(self, *events: h11.Request | h11.Data | h11.EndOfMessage) -> None:
        for event in events:
            await self.stream.send_all(self.h11.send(event))

    async def send_raw(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def response(self) -> tuple[h11.Response, bytes]:
        head = None
        body = b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(bytes(await self.stream.receive_some(65536)))
                continue
            if isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return head, body
            elif isinstance(event, h11.InformationalResponse):
                continue
            else:
                raise AssertionError(event)

    async def raw_until_close(self) -> bytes:
        data = b""
        while chunk := await self.stream.receive_some(65536):
            data += chunk
        return data


def get(target: str = "/", **headers: str) -> h11.Request:
    return h11.Request(method="GET", target=target, headers=[("host", "x"), *headers.items()])


async def echo(ex: Exchange) -> None:
    body = await ex.read_body()
    await ex.respond(
        200,
        [("content-type", "text/plain")],
        f"{ex.head.method} {ex.head.target} {len(body)}".encode(),
    )


Serve = Callable[..., Awaitable[Client]]


async def test_keep_alive_serves_several_requests_on_one_connection(serve: Serve) -> None:
    """Three requests in a row on one connection each get their own answer."""
    client = await serve(echo)
    for i in range(3):
        await client.send(get(f"/r{i}"), h11.EndOfMessage())
        head, body = await client.response()
        assert head.status_code == 200
        assert body == f"GET /r{i} 0".encode()
        client.h11.start_next_cycle()


async def test_expect_100_continue_is_answered_before_the_body(serve: Serve) -> None:
    """A client waiting for 100-continue gets it once the handler reads the body."""
    client = await serve(echo)
    request = h11.Request(
        method="POST",
        target="/p",
        headers=[("host", "x"), ("content-length", "5"), ("expect", "100-continue")],
    )
    await client.send(request)
    data = await client.stream.receive_some(1000)
    assert data.startswith(b"HTTP/1.1 100 ")
    client.h11.receive_data(bytes(data))
    assert isinstance(client.h11.next_event(), h11.InformationalResponse)
    await client.send(h11.Data(data=b"hello"), h11.EndOfMessage())
    head, body = await client.response()
    assert head.status_code == 200
    assert body == b"POST /p 5"


async def test_malformed_request_gets_400(serve: Serve) -> None:
    """Garbage instead of a request line is answered 400 and the connection closed."""
    client = await serve(echo)
    await client.send_raw(b"NOT HTTP AT ALL\r\n\r\n")
    raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 400 ")


async def test_oversized_head_gets_431(serve: Serve) -> None:
    """A request head over 64 KiB is refused with 431."""
    client = await serve(echo)
    await client.send_raw(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70_000 + b"\r\n\r\n")
    raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 431 ")


async def test_declared_body_over_limit_gets_413_without_reading_it(serve: Serve) -> None:
    """A Content-Length above max_body_bytes is refused at once with 413."""
    client = await serve(echo)
    await client.send(
        h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "5000")])
    )
    raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 413 ")
    assert b"max_body_bytes" in raw


async def test_chunked_body_over_limit_gets_413(serve: Serve) -> None:
    """A chunked body that grows past max_body_bytes is cut off with 413."""
    client = await serve(echo)
    await client.send(
        h11.Request(
            method="POST", target="/", headers=[("host", "x"), ("transfer-encoding", "chunked")]
        )
    )
    for _ in range(3):
        await client.send(h11.Data(data=b"x" * 400))
    await client.send(h11.EndOfMessage())
    raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 413 ")


async def test_slow_head_gets_408(serve: Serve, autojump_clock: trio.testing.MockClock) -> None:
    """A head that starts but does not finish within head_timeout_s is answered 408."""
    client = await serve(echo)
    await client.send_raw(b"GET / HTTP/1.1\r\nhost: x\r\n")
    raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 408 ")
    assert trio.current_time() >= LIMITS.head_timeout_s


async def test_a_head_begun_behind_the_last_request_must_end_within_the_head_timeout(
    serve: Serve, autojump_clock: trio.testing.MockClock
) -> None:
    """A request and the first bytes of the next one in one packet, then silence: 408
    after head_timeout_s (these bytes used to wait for more without any deadline)."""
    client = await serve(echo)
    await client.send_raw(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\nGET /b HTTP/1.1\r\nho")
    raw = b""
    with trio.fail_after(LIMITS.keepalive_idle_s * 10):
        raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 408 " in raw
    assert trio.current_time() <= LIMITS.head_timeout_s + 1


async def test_idle_keep_alive_connection_is_closed_quietly(
    serve: Serve, autojump_clock: trio.testing.MockClock
) -> None:
    """After a response, a connection idle for keepalive_idle_s is closed without a 408."""
    client = await serve(echo)
    await client.send(get(), h11.EndOfMessage())
    await client.response()
    start = trio.current_time()
    assert await client.raw_until_close() == b""
    assert trio.current_time() - start >= LIMITS.keepalive_idle_s


async def test_client_hang_up_cancels_the_handler_at_once(serve: Serve) -> None:
    """A client that disconnects mid-stream cancels the handler without waiting for a write."""
    cancelled = trio.Event()
    started = trio.Event()

    async def slow_stream(ex: Exchange) -> None:
        await ex.read_body()
        await ex.start_response(200, [("content-type", "text/event-stream")])
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    client = await serve(slow_stream)
    await client.send(get(), h11.EndOfMessage())
    await started.wait()
    await client.stream.aclose()
    with trio.fail_after(1):
        await cancelled.wait()


async def test_a_hang_up_cancels_a_later_handler_on_a_kept_alive_connection(
    serve: Serve,
) -> None:
    """The connection's one watcher guards each request in turn: after two answered
    requests, a hang-up during the third still cancels its handler at once."""
    cancelled = trio.Event()
    started = trio.Event()
    served = 0

    async def third_hangs(ex: Exchange) -> None:
        nonlocal served
        await ex.read_body()
        served += 1
        if served < 3:
            await ex.respond(200, [], b"ok")
            return
        await ex.start_response(200, [("content-type", "text/event-stream")])
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    client = await serve(third_hangs)
    for _ in range(2):
        await client.send(get(), h11.EndOfMessage())
        _head, body = await client.response()
        assert body == b"ok"
        client.h11.start_next_cycle()
    await client.send(get(), h11.EndOfMessage())
    await started.wait()
    await client.stream.aclose()
    with trio.fail_after(1):
        await cancelled.wait()


async def test_a_hang_up_is_noticed_once_the_watch_delay_has_passed(
    serve: Serve, autojump_clock: trio.testing.MockClock
) -> None:
    """A handler still running after hang_up_watch_delay_s is cancelled by a hang-up that
    came earlier, as soon as the watch starts (not at its next write)."""
    delay_s = 3.0
    cancelled_at: list[float] = []
    started = trio.Event()

    async def waits(ex: Exchange) -> None:
        await ex.read_body()
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled_at.append(trio.current_time())

    limits = attrs.evolve(LIMITS, hang_up_watch_delay_s=delay_s)
    client = await serve(waits, limits)
    await client.send(get(), h11.EndOfMessage())
    await started.wait()
    body_read_at = trio.current_time()
    await client.stream.aclose()
    with trio.fail_after(delay_s + 1):
        while not cancelled_at:
            await trio.sleep(0.01)
    assert cancelled_at[0] >= body_read_at + delay_s


class CountingStream(trio.abc.Stream):
    """A stream that counts the reads made on it (the watcher's among them)."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.reads = 0

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self.reads += 1
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_handler_done_within_the_watch_delay_is_never_watched(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Answers that end within the delay cost no watcher read: the connection reads only
    the request heads (and the close), however many requests it serves."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    counting = CountingStream(server_stream)
    conn = HTTPConnection(counting, LIMITS)
    nursery.start_soon(conn.serve, echo, trio.Event())
    client = Client(client_stream)
    for _ in range(5):
        await client.send(get(), h11.EndOfMessage())
        await client.response()
        client.h11.start_next_cycle()
        await trio.sleep(LIMITS.hang_up_watch_delay_s * 2)  # the watcher wakes, finds nothing
    # One read per request head; the memory stream may need a second one for the first.
    assert counting.reads <= 6


async def test_a_request_read_before_the_watcher_first_runs_is_still_watched(
    nursery: trio.Nursery,
) -> None:
    """The hang-up watcher is armed by a flag, not only a wake-up: a first request whose
    head and body are read before the watcher task first runs is still guarded."""
    cancelled = trio.Event()
    started = trio.Event()

    async def waits(ex: Exchange) -> None:
        await ex.read_body()
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    client_stream, server_stream = trio.testing.memory_stream_pair()
    conn = HTTPConnection(server_stream, LIMITS)
    # Already buffered: serve() reads the head and the body without waiting once.
    conn.proto.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nhi")
    nursery.start_soon(conn.serve, waits, trio.Event())
    await started.wait()
    await client_stream.aclose()
    with trio.fail_after(1):
        await cancelled.wait()


async def test_shutdown_ends_an_idle_wait_after_several_requests(serve: Serve) -> None:
    """The connection's shutdown helper ends the wait for a next head at once, also on a
    connection that has served requests before."""
    shutdown = Shutdown()
    client = await serve(echo, shutdown=shutdown)
    for _ in range(2):
        await client.send(get(), h11.EndOfMessage())
        await client.response()
        client.h11.start_next_cycle()
    await trio.testing.wait_all_tasks_blocked()
    shutdown.begin(5)
    with trio.fail_after(1):
        assert await client.raw_until_close() == b""


async def test_head_request_gets_headers_and_no_body(serve: Serve) -> None:
    """A HEAD answer carries the GET's Content-Length but no body, and the connection lives on."""
    client = await serve(echo)
    await client.send(
        h11.Request(method="HEAD", target="/x", headers=[("host", "x")]), h11.EndOfMessage()
    )
    head, body = await client.response()
    assert head.status_code == 200
    assert dict(head.headers)[b"content-length"] == b"9"  # len("HEAD /x 0")
    assert body == b""
    client.h11.start_next_cycle()
    await client.send(get("/y"), h11.EndOfMessage())
    assert (await client.response())[1] == b"GET /y 0"


async def test_handler_without_response_gets_500(serve: Serve) -> None:
    """A handler that returns without answering still produces a response."""

    async def silent(ex: Exchange) -> None:
        return None

    client = await serve(silent)
    await client.send(get(), h11.EndOfMessage())
    head, body = await client.response()
    assert head.status_code == 500
    assert json.loads(body)["error"]


async def test_unread_body_is_drained_and_connection_reused(serve: Serve) -> None:
    """A handler that ignores the request body does not break the next request."""

    async def ignore_body(ex: Exchange) -> None:
        await ex.respond(204, [])

    client = await serve(ignore_body)
    await client.send(
        h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "3")]),
        h11.Data(data=b"abc"),
        h11.EndOfMessage(),
    )
    head, _ = await client.response()
    assert head.status_code == 204
    client.h11.start_next_cycle()
    await client.send(get(), h11.EndOfMessage())
    head, _ = await client.response()
    assert head.status_code == 204


async def test_shutdown_closes_idle_connections_and_marks_responses_close(serve: Serve) -> None:
    """When shutdown begins, an idle connection closes and an in-flight response says close."""
    shutdown = Shutdown()
    release = trio.Event()

    async def waits(ex: Exchange) -> None:
        await release.wait()
        await ex.respond(200, [], b"done")

    client = await serve(waits, shutdown=shutdown)
    await client.send(get(), h11.EndOfMessage())
    await trio.testing.wait_all_tasks_blocked()
    shutdown.begin(5)
    release.set()
    raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"done" in raw


async def test_a_head_waiting_on_the_socket_after_an_answer_must_end_within_the_head_timeout(
    nursery: trio.Nursery,
) -> None:
    """On a real socket, the start of a head that arrived while the handler ran is taken
    without waiting; it is still held to head_timeout_s: 408, not an open-ended wait."""
    client_sock, server_sock = trio.socket.socketpair()
    limits = ServerLimits(head_timeout_s=0.2, keepalive_idle_s=20)
    conn = HTTPConnection(trio.SocketStream(server_sock), limits)
    client = trio.SocketStream(client_sock)

    async def slow_echo(ex: Exchange) -> None:
        await client_sock.send(b"GET /b HTTP/1.1\r\nho")  # the next head starts meanwhile
        await trio.sleep(0.02)  # under the hang-up watch's delay: nobody reads it
        await echo(ex)

    nursery.start_soon(conn.serve, slow_echo, trio.Event())
    raw = b""
    async with client:
        await client.send_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
        with trio.fail_after(10):
            while chunk := await client.receive_some(65536):
                raw += chunk
    assert raw.startswith(b"HTTP/1.1 200 ")
    assert b"HTTP/1.1 408 " in raw


async def _serve_on_a_socket(nursery: trio.Nursery, shutdown: Shutdown) -> trio.SocketStream:
    """Our server on a real loopback listener (its idle waits under the read deadlines), and
    a client connection to it that has had one answer."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    await nursery.start(partial(serve_listeners, echo, listeners, limits=LIMITS, shutdown=shutdown))
    client = await trio.open_tcp_stream("127.0.0.1", port)
    await client.send_all(b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n")
    answer = b""
    while not answer.endswith(b"GET /a 0"):
        answer += await client.receive_some(65536)
    return client


async def _until_closed(client: trio.SocketStream) -> bytes:
    rest = b""
    async with client:
        while chunk := await client.receive_some(65536):
            rest += chunk
    return rest


async def test_an_idle_socket_connection_is_closed_quietly_at_its_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """On a real socket the wait for the next head is kept by the server's read deadlines:
    closed without a 408 once keepalive_idle_s has passed, and not before."""
    client = await _serve_on_a_socket(nursery, Shutdown())
    start = trio.current_time()
    assert await _until_closed(client) == b""
    assert LIMITS.keepalive_idle_s <= trio.current_time() - start < LIMITS.keepalive_idle_s + 1


async def test_shutdown_closes_an_idle_socket_connection_at_once(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """The shutdown closes a connection waiting for its next head (on a real socket) at
    once, not at its idle deadline; a connection that is still answering finishes first."""
    shutdown = Shutdown()
    client = await _serve_on_a_socket(nursery, shutdown)
    await trio.sleep(1)
    start = trio.current_time()
    shutdown.begin(5)
    assert await _until_closed(client) == b""
    assert trio.current_time() - start < 1
