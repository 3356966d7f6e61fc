"""M3, L3, L7: slow bodies, clients that stop reading, connection caps, descriptor limits,
accept errors, and requests framed two ways."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import h11
import pytest
import trio
import trio.testing

from tests.conftest import StartServe
from tests.procs import write_config
from tests.rawclient import connect, status_of
from tests.server.test_connection import LIMITS, Client, Serve, echo
from trio_pool import clock
from trio_pool.server.connection import Exchange, ServerLimits
from trio_pool.server.fds import FD_RESERVE, connection_cap
from trio_pool.server.server import Shutdown, serve_listeners
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState


async def test_a_trickled_body_is_cut_by_the_minimum_rate(
    serve: Serve, autojump_clock: trio.testing.MockClock
) -> None:
    """One body byte every 3 s (each read within head_timeout_s) is cut with 408 once it
    falls behind the minimum rate, not renewed for ever."""
    client = await serve(echo)
    start = trio.current_time()
    await client.send_raw(b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
    raw = b""
    for _ in range(30):
        with trio.move_on_after(3):
            raw += await client.stream.receive_some(65536)
        if raw:
            break
        await client.send_raw(b"x")
    assert raw.startswith(b"HTTP/1.1 408 ")
    # head_timeout_s (5) plus 1/1024 s per byte received: far below 30 trickled bytes.
    assert trio.current_time() - start <= LIMITS.head_timeout_s + 3


async def test_a_body_at_the_minimum_rate_is_read_whole(
    serve: Serve, autojump_clock: trio.testing.MockClock
) -> None:
    """A slow but steady body (2 KiB/s, above the 1 KiB/s floor) is not cut."""
    client = await serve(echo, ServerLimits(max_body_bytes=100_000, head_timeout_s=5))
    await client.send_raw(b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: 40960\r\n\r\n")
    for _ in range(20):
        await client.send_raw(b"x" * 2048)
        await trio.sleep(1)
    head, body = await client.response()
    assert head.status_code == 200
    assert body == b"POST /p 40960"


async def test_transfer_encoding_with_content_length_is_refused_and_closed(serve: Serve) -> None:
    """RFC 9112 §6.3: TE plus CL gets 400 and the connection closes; a pipelined request
    behind it is never handled."""
    seen: list[str] = []

    async def handler(ex: Exchange) -> None:
        seen.append(ex.head.target)
        await echo(ex)

    client = await serve(handler)
    await client.send_raw(
        b"POST /smuggle HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 4\r\n"
        b"\r\n4\r\nabcd\r\n0\r\n\r\nGET /second HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    with trio.fail_after(5):
        raw = await client.raw_until_close()
    assert raw.startswith(b"HTTP/1.1 400 ")
    assert raw.count(b"HTTP/1.1") == 1
    assert seen == []


async def test_a_client_that_stops_reading_is_cut_after_the_write_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A streaming answer to a client that reads nothing ends after write_timeout_s: the
    handler is released (and with it the upstream and the lease)."""
    from trio_pool.server.connection import HTTPConnection

    released = trio.Event()

    async def endless(ex: Exchange) -> None:
        try:
            await ex.start_response(200, [("content-type", "text/event-stream")])
            while True:
                await ex.send(b"data: " + b"x" * 65536 + b"\n\n")
        finally:
            released.set()

    client_stream, server_stream = trio.testing.lockstep_stream_pair()
    limits = ServerLimits(head_timeout_s=5, write_timeout_s=40)
    conn = HTTPConnection(server_stream, limits)
    nursery.start_soon(conn.serve, endless, Shutdown().requested)
    client = Client(client_stream)
    await client.send(
        h11.Request(method="GET", target="/s", headers=[("host", "x")]), h11.EndOfMessage()
    )
    start = trio.current_time()
    with trio.fail_after(100):
        await released.wait()
    assert 40 <= trio.current_time() - start < 45


class FlakyListener(trio.abc.Listener[trio.abc.Stream]):
    """Raises the given errors from accept, then hands out ``streams``, then waits."""

    def __init__(self, errors: list[OSError], streams: list[trio.abc.Stream]) -> None:
        self.errors = errors
        self.streams = streams

    async def accept(self) -> trio.abc.Stream:
        await trio.lowlevel.checkpoint()
        if self.errors:
            raise self.errors.pop(0)
        if self.streams:
            return self.streams.pop(0)
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


async def test_accept_out_of_descriptors_retries_and_logs_once_per_interval(
    nursery: trio.Nursery,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EMFILE fifty times in a row (5 s of retries) is one warning, then serving goes on."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    emfile = [OSError(errno.EMFILE, "Too many open files") for _ in range(50)]
    listener: trio.abc.Listener[trio.abc.Stream] = FlakyListener(emfile, [server_stream])
    shutdown = Shutdown()
    await nursery.start(
        lambda task_status: serve_listeners(
            echo, [listener], limits=LIMITS, shutdown=shutdown, task_status=task_status
        )
    )
    client = Client(client_stream)
    await client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    await client.send(h11.EndOfMessage())
    head, _body = await client.response()
    assert head.status_code == 200
    failures = [r for r in caplog.records if "server.accept.failed" in r.getMessage()]
    assert len(failures) == 1
    shutdown.begin(0)


async def test_an_accept_error_that_is_not_about_capacity_is_raised(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """EBADF means the listener is broken: the server stops with it (trio's rule), instead
    of retrying ten times a second for ever."""
    listener: trio.abc.Listener[trio.abc.Stream] = FlakyListener(
        [OSError(errno.EBADF, "Bad file descriptor")], []
    )
    with pytest.raises(BaseExceptionGroup) as caught, trio.fail_after(60):
        await serve_listeners(echo, [listener], limits=LIMITS, shutdown=Shutdown())
    assert caught.group_contains(OSError, depth=None)


async def test_past_the_connection_cap_new_clients_wait_for_a_free_slot(
    nursery: trio.Nursery,
) -> None:
    """With max_connections=2 a third client is accepted only once one of two leaves."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    shutdown = Shutdown()
    limits = ServerLimits(head_timeout_s=5, keepalive_idle_s=30, max_connections=2)
    await nursery.start(
        lambda task_status: serve_listeners(
            echo, listeners, limits=limits, shutdown=shutdown, task_status=task_status
        )
    )
    request = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"
    with trio.fail_after(10):
        first, second = await connect(port), await connect(port)
        for stream in (first, second):
            await stream.send_all(request)
            assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
        third = await connect(port)  # the kernel completes the handshake: backlog
        await third.send_all(request)
        with trio.move_on_after(0.3):
            await third.receive_some(65536)
            raise AssertionError("a third connection was served past the cap")
        await first.aclose()
        assert (await third.receive_some(65536)).startswith(b"HTTP/1.1 200")
    for stream in (second, third):
        await stream.aclose()
    shutdown.begin(0)


def test_connection_cap_keeps_descriptors_in_reserve() -> None:
    """Two descriptors per connection, FD_RESERVE spare; a configured cap wins."""
    assert connection_cap(200) == (200 - FD_RESERVE) // 2
    assert connection_cap(1024) == (1024 - FD_RESERVE) // 2
    assert connection_cap(10**7) == 4096
    assert connection_cap(200, configured=10) == 10


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
async def test_slow_clients_under_a_low_fd_limit_do_not_starve_a_request(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """The audit's M3: a proxy limited to 200 descriptors, 220 connections trickling a body
    one byte every 3 s, then a real request: it is answered, the trickles are cut, and no
    'Too many open files' is ever logged."""
    now = clock.now()
    state = SimState.with_accounts([new_account("claude", "a", now=now)])
    sim_base = await nursery.start(serve_simulator, state)
    await trio.to_thread.run_sync(lambda: write_pool(tmp_path / "pool", state, now=now))
    write_config(tmp_path, sim_base, head_timeout_s=1)
    served = await serve_process(tmp_path, prefix=["prlimit", "--nofile=200:200"])
    head = b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000\r\n\r\n"
    refused = 0

    async def trickle() -> None:
        nonlocal refused
        stream = await connect(served.port)
        try:
            await stream.send_all(head)
            while True:
                await stream.send_all(b"x")
                with trio.move_on_after(3):
                    answer = await stream.receive_some(65536)
                    refused += answer.startswith(b"HTTP/1.1 408")
                    return
        except trio.BrokenResourceError:
            return
        finally:
            await stream.aclose()

    with trio.fail_after(40):
        async with trio.open_nursery() as flood:
            for _ in range(220):
                flood.start_soon(trickle)
            await trio.sleep(0.5)
            assert await status_of(served.base) == 200
    assert refused > 0
    assert served.alive
    assert "Too many open files" not in served.text


async def test_the_soft_fd_limit_is_raised_to_the_hard_limit(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """Started with a soft limit of 256 under a hard one of 4096, the proxy raises it."""
    if shutil.which("prlimit") is None:
        pytest.skip("needs prlimit (util-linux)")
    state = SimState.with_accounts([])
    sim_base = await nursery.start(serve_simulator, state)
    write_config(tmp_path, sim_base)
    with trio.fail_after(20):
        served = await serve_process(tmp_path, prefix=["prlimit", "--nofile=256:4096"])
        assert "server.fd_limit.raised from=256 to=4096" in served.text
        limits = await trio.Path(f"/proc/{served.process.pid}/limits").read_text()
    assert any(
        line.startswith("Max open files") and line.split()[3:5] == ["4096", "4096"]
        for line in limits.splitlines()
    )


async def test_a_websocket_client_that_stops_reading_breaks_its_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """L3 for WebSocket: the client side of a relayed socket gives up on a write the client
    does not take within the write timeout (trio-websocket then closes with 1006 and the
    relay releases the upstream)."""
    from trio_pool.upstream.websocket import ReplayStream

    _client, server = trio.testing.lockstep_stream_pair()
    stream = ReplayStream(server, b"", write_timeout_s=40)
    start = trio.current_time()
    with pytest.raises(trio.BrokenResourceError), trio.fail_after(100):
        await stream.send_all(b"x" * 65536)
    assert 40 <= trio.current_time() - start < 45
