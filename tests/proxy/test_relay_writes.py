"""The relay over memory streams: one client write per upstream read, never one per chunk;
the head goes with the body bytes that came with it, the end with the last read."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import attrs
import trio
import trio.testing

from tests.upstream.fakes import CHUNKED_HEAD, MemoryConnector, ServerSide, chunk
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import Outcome, OutcomeKind
from trio_pool.proxy.relay import RelayResult, relay_response
from trio_pool.server.connection import Exchange, HTTPConnection, ServerLimits
from trio_pool.server.server import Shutdown
from trio_pool.upstream.client import UpstreamClient

REQUEST = b"POST /v1/messages HTTP/1.1\r\nhost: proxy\r\ncontent-length: 0\r\n\r\n"
EVENTS = 50


def sse(kind: str, data: dict[str, object]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), json.dumps(data).encode())


@attrs.define(eq=False)
class CountingStream(trio.abc.Stream):
    """The client's side as the proxy sees it: counts the proxy's writes."""

    inner: trio.abc.Stream
    writes: list[bytes] = attrs.field(factory=list)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_read_of_many_sse_chunks_is_one_client_write(nursery: trio.Nursery) -> None:
    """An upstream read carrying 50 SSE events, each its own HTTP chunk, reaches the client
    in one write, with the head that came in the same read; the last read goes out with
    the end of the message; nothing is lost."""
    deltas = [
        sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": f"t{i}"},
            },
        )
        for i in range(EVENTS)
    ]
    stop = sse("message_stop", {"type": "message_stop"})

    async def upstream(index: int, conn: ServerSide) -> None:
        await conn.request()
        await conn.send_raw(CHUNKED_HEAD + b"".join(chunk(d) for d in deltas))
        await trio.testing.wait_all_tasks_blocked()  # the proxy has relayed that read
        await conn.send_raw(chunk(stop) + b"0\r\n\r\n", whole=True)
        await conn.wait_closed()

    counting, result = await _relayed(nursery, upstream)
    head_write, end_write = counting.writes
    deltas_chunk = b"%x\r\n%s\r\n" % (len(b"".join(deltas)), b"".join(deltas))
    assert head_write.startswith(b"HTTP/1.1 200")
    assert head_write.endswith(b"\r\n\r\n" + deltas_chunk)
    assert end_write == b"%x\r\n%s\r\n0\r\n\r\n" % (len(stop), stop)
    assert result.complete
    assert result.bytes_sent == len(b"".join(deltas)) + len(stop)


async def _relayed(
    nursery: trio.Nursery, upstream: Callable[[int, ServerSide], Awaitable[None]]
) -> tuple[CountingStream, RelayResult]:
    """One Claude answer from ``upstream`` relayed to a client whose writes are counted."""
    counting, exchange = _exchange()
    provider = PROVIDER_REGISTRY["claude"]
    client = UpstreamClient(connector=MemoryConnector(nursery, upstream))
    result = RelayResult(Outcome(OutcomeKind.OK, 200))
    with trio.fail_after(5):
        async with client.stream(
            "POST", "https://api.example.test/v1/messages", [], b"{}"
        ) as response:
            observer = provider.observer(exchange.head, response.headers, 0.0)
            await relay_response(exchange, response, provider, observer, Shutdown(), result)
    return counting, result


def _exchange() -> tuple[CountingStream, Exchange]:
    """A proxy-side exchange for a POST /v1/messages whose writes are counted."""
    proxy_side, _client_side = trio.testing.memory_stream_pair()
    counting = CountingStream(proxy_side)
    connection = HTTPConnection(counting, ServerLimits())
    connection.proto.receive_data(REQUEST)
    head = connection.proto.next_request()
    assert head is not None
    return counting, Exchange(connection, head)


async def test_an_answer_that_arrived_whole_is_one_client_write(nursery: trio.Nursery) -> None:
    """A non-streamed answer whose head and body came in one upstream read reaches the
    client as one write: head, body and end of message together."""
    answer = json.dumps({"type": "message", "usage": {"input_tokens": 3, "output_tokens": 5}})

    async def upstream(index: int, conn: ServerSide) -> None:
        await conn.request()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
        await conn.send_raw(head % len(answer) + answer.encode(), whole=True)
        await conn.wait_closed()

    counting, result = await _relayed(nursery, upstream)
    [write] = counting.writes
    assert write.startswith(b"HTTP/1.1 200")
    assert write.endswith(b"\r\n\r\n" + answer.encode())
    assert result.usage is not None
    assert result.usage.output == 5
    assert result.bytes_sent == len(answer)


async def test_a_stream_cut_before_its_final_event_is_told_in_band(nursery: trio.Nursery) -> None:
    """An SSE answer (its media type in any case) that ends cleanly without its terminal
    event gets an error event in the stream, and the try counts as a transient failure."""
    delta = sse("content_block_delta", {"type": "content_block_delta", "index": 0})

    async def upstream(index: int, conn: ServerSide) -> None:
        await conn.request()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: Text/Event-Stream\r\ntransfer-encoding: chunked\r\n\r\n"
        await conn.send_raw(head + chunk(delta) + b"0\r\n\r\n", whole=True)
        await conn.wait_closed()

    counting, result = await _relayed(nursery, upstream)
    sent = b"".join(counting.writes)
    assert b"event: error" in sent
    assert b"ended before its final event" in sent
    assert result.outcome.kind is OutcomeKind.TRANSIENT
