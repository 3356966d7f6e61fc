"""First-byte deadlines over real sockets (server/deadlines.py): a request whose response
head does not come in time is UpstreamTimeout, its connection closed under the wait, over
plain TCP and TLS; heads that come in time are untouched; a lowered limit is kept."""

from __future__ import annotations

from functools import partial

import pytest
import trio
import trio.testing

from tests.upstream.conftest import Tls
from trio_pool.errors import UpstreamTimeout
from trio_pool.server.connection import Exchange, ServerLimits
from trio_pool.server.deadlines import ReadDeadlines
from trio_pool.server.server import Shutdown, serve_listeners
from trio_pool.upstream.client import Timeouts, UpstreamClient
from trio_pool.upstream.connect import NetworkConnector

LIMIT_S = 10.0


async def answer_after_the_path(exchange: Exchange) -> None:
    """``/after/<seconds>``: the answer comes that many (mock) seconds late."""
    await exchange.read_body()
    await trio.sleep(float(exchange.head.path.rsplit("/", 1)[1]))
    await exchange.respond(200, [("content-type", "text/plain")], b"in time")


async def serve(nursery: trio.Nursery, tls: Tls | None = None) -> int:
    tcp = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = [
        tcp if tls is None else trio.SSLListener(tcp, tls.server, https_compatible=True)
    ]
    limits = ServerLimits(head_timeout_s=1000, keepalive_idle_s=1000)
    await nursery.start(
        partial(
            serve_listeners,
            answer_after_the_path,
            listeners,
            limits=limits,
            shutdown=Shutdown(),
        )
    )
    return int(tcp.socket.getsockname()[1])


def client(tls: Tls | None = None, limit_s: float = LIMIT_S) -> UpstreamClient:
    connector = NetworkConnector(tls.client if tls is not None else None, proxies={})
    return UpstreamClient(
        Timeouts(connect_s=5, first_byte_s=limit_s, idle_s=1000), connector=connector
    )


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
async def test_a_late_head_is_a_timeout_at_the_deadline(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tls: Tls, secure: bool
) -> None:
    """No head within first_byte_s: UpstreamTimeout at the deadline (not a retry on a fresh
    connection, though the pool had this one), and the connection is not kept."""
    port = await serve(nursery, tls if secure else None)
    base = f"{'https' if secure else 'http'}://127.0.0.1:{port}"
    upstream = client(tls if secure else None)
    assert (await upstream.request("POST", f"{base}/after/0", [], b"{}"))[0] == 200
    start = trio.current_time()
    with pytest.raises(UpstreamTimeout, match="timed out: no response head"):
        await upstream.request("POST", f"{base}/after/1000", [], b"{}")
    assert LIMIT_S <= trio.current_time() - start < LIMIT_S + 1
    assert (await upstream.request("POST", f"{base}/after/0", [], b"{}"))[0] == 200
    await upstream.aclose()


async def test_heads_in_time_pass_and_only_the_late_ones_fail(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """Requests at once, some answered before the deadline and some after: each gets its
    own verdict, and nothing stays watched."""
    port = await serve(nursery)
    upstream = client()
    verdicts: dict[float, object] = {}

    async def one(delay: float) -> None:
        try:
            response = await upstream.request("POST", f"http://127.0.0.1:{port}/after/{delay}", [])
            verdicts[delay] = response[0]
        except UpstreamTimeout:
            verdicts[delay] = "timeout"

    async with trio.open_nursery() as requests:
        for delay in (0, 3, 9.5, 10.5, 30, 5):
            requests.start_soon(one, delay)
    assert verdicts == {0: 200, 3: 200, 5: 200, 9.5: 200, 10.5: "timeout", 30: "timeout"}
    assert not upstream._deadlines.watched
    await upstream.aclose()


async def test_a_lowered_limit_wakes_the_watcher(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    """A request with a shorter limit than the one the watcher sleeps on is still held to
    it (the watcher looks again)."""
    port = await serve(nursery)
    upstream = client(limit_s=100)
    url = f"http://127.0.0.1:{port}/after/1000"

    async def slow() -> None:
        with pytest.raises(UpstreamTimeout):
            await upstream.request("POST", url, [])

    async with trio.open_nursery() as requests:
        requests.start_soon(slow)
        await trio.sleep(1)
        upstream.timeouts = Timeouts(connect_s=5, first_byte_s=2, idle_s=1000)
        start = trio.current_time()
        with pytest.raises(UpstreamTimeout):
            await upstream.request("POST", url, [])
        assert 2 <= trio.current_time() - start < 3
    await upstream.aclose()


class _Waiting:
    late = False

    def expire(self) -> None:
        self.late = True


async def test_the_watcher_keeps_the_order_of_the_deadlines(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Sans sockets: each entry expires at its own deadline, none that was discarded."""
    heads = ReadDeadlines()
    first, second, gone = _Waiting(), _Waiting(), _Waiting()
    heads.add(first, 5)
    heads.add(gone, 6)
    heads.add(second, 8)
    heads.discard(gone)
    await trio.sleep(5.5)
    assert (first.late, second.late) == (True, False)
    await trio.sleep(3)
    assert (second.late, gone.late) == (True, False)


async def trickle(exchange: Exchange) -> None:
    """``/trickle/<gap>/<events>``: a chunked body, one event every ``gap`` seconds, then
    silence."""
    await exchange.read_body()
    _, gap, events = exchange.head.path.rsplit("/", 2)
    await exchange.start_response(200, [("content-type", "text/event-stream")])
    for n in range(int(events)):
        await trio.sleep(float(gap))
        await exchange.send(b"data: %d\n\n" % n)
    await trio.sleep(1000)


@pytest.mark.parametrize("secure", [False, True], ids=["tcp", "tls"])
async def test_a_body_read_that_waits_past_idle_s_is_a_timeout(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock, tls: Tls, secure: bool
) -> None:
    """Reads that come within idle_s pass, however long the body takes; the first silence
    longer than idle_s is UpstreamTimeout, after everything that came before it."""
    tcp = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    listeners: list[trio.abc.Listener[trio.abc.Stream]] = [
        tcp if not secure else trio.SSLListener(tcp, tls.server, https_compatible=True)
    ]
    limits = ServerLimits(head_timeout_s=1000, keepalive_idle_s=1000)
    await nursery.start(
        partial(serve_listeners, trickle, listeners, limits=limits, shutdown=Shutdown())
    )
    port = tcp.socket.getsockname()[1]
    base = f"{'https' if secure else 'http'}://127.0.0.1:{port}"
    connector = NetworkConnector(tls.client if secure else None, proxies={})
    upstream = UpstreamClient(Timeouts(connect_s=5, first_byte_s=5, idle_s=4), connector=connector)
    seen: list[bytes] = []

    async def read() -> None:
        async with upstream.stream("POST", f"{base}/trickle/3/5", [], b"{}") as response:
            async for block in response.iter_chunks():
                seen.append(block)

    start = trio.current_time()
    with pytest.raises(UpstreamTimeout, match="nothing received for 4 s"):
        await read()
    assert b"".join(seen) == b"".join(b"data: %d\n\n" % n for n in range(5))
    assert 15 + 4 <= trio.current_time() - start < 15 + 5
    assert not upstream._deadlines.watched
    await upstream.aclose()


async def test_many_waits_of_one_limit_expire_in_turn(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A thousand waits of one limit, registered a second apart (some discarded), and one of
    a shorter limit registered last: each expires at its own deadline, in turn."""
    heads = ReadDeadlines()
    waits = [_Waiting() for _ in range(1000)]
    for wait in waits:
        heads.add(wait, 2000)
        await trio.sleep(1)
    for gone in waits[1::2]:
        heads.discard(gone)
    short = _Waiting()
    heads.add(short, 10)  # due long before the others, though registered after them
    await trio.sleep(10.5)
    assert short.late
    assert not any(w.late for w in waits)
    start = trio.current_time()  # 1010.5 s after the first wait
    await trio.sleep(2000 - start + 0.5)  # just past the first one's deadline
    assert [w.late for w in waits[:4]] == [True, False, False, False]
    await trio.sleep(999)
    assert all(w.late for w in waits[::2])
    assert not any(w.late for w in waits[1::2])
    assert heads.watched == 0
