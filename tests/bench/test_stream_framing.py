"""The benchmark's fake upstream and bare relay frame streams as the real services do.

The real Anthropic API sends every SSE event in its own HTTP chunk, flushed on its own; a
benchmark upstream that joins the events hides a proxy's per-chunk cost. These pin the framing:
in the encoded replies, in the upstream's writes, and on the wire through the bare relay.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from bench import procs, sse_shapes, upstream
from bench.targets import wait_accepting
from bench.workloads import body_bytes, headers

EVENTS = 20
# message_start, content_block_start, ping, the deltas, content_block_stop, message_delta,
# message_stop.
STREAM_EVENTS = EVENTS + 6
API_KEY = (("x-api-key", upstream.API_KEY),)


def one_chunk(piece: bytes) -> bytes:
    """The data of ``piece``, which must be exactly one HTTP chunk."""
    size_line, _, rest = piece.partition(b"\r\n")
    size = int(size_line, 16)
    assert rest[size:] == b"\r\n", "exactly one chunk, nothing after it"
    return rest[:size]


def is_one_event(data: bytes) -> bool:
    return data.endswith(b"\n\n") and data.count(b"\n\n") == 1 and data.count(b"event: ") == 1


def chunks_of(response: bytes) -> list[bytes]:
    """The chunks of a whole chunked response, in order (the head is skipped)."""
    _, _, rest = response.partition(b"\r\n\r\n")
    out: list[bytes] = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        assert rest[size : size + 2] == b"\r\n"
        out.append(rest[:size])
        rest = rest[size + 2 :]


def request(*, stream: bool, credentials: tuple[tuple[str, str], ...] = API_KEY) -> bytes:
    body = body_bytes(stream=stream)
    lines = ["POST /v1/messages HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in headers(credentials)]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class RecordingTransport(asyncio.Transport):
    """A transport that keeps every write apart (a fake, not a mock: no call assertions)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def answered(up: upstream.Upstream, raw: bytes) -> list[bytes]:
    transport = RecordingTransport()
    conn = upstream.Connection(up)
    conn.connection_made(transport)
    conn.data_received(raw)
    return transport.writes


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def test_encoded_stream_is_one_chunk_per_sse_event() -> None:
    """The reply's pieces are the head, one chunk per SSE event, and the last-chunk marker."""
    pieces = sse_shapes.Replies(sse_shapes.Shape(events=EVENTS, event_bytes=200)).stream
    assert b"transfer-encoding: chunked" in pieces[0]
    assert pieces[-1] == sse_shapes.LAST_CHUNK
    events = [one_chunk(piece) for piece in pieces[1:-1]]
    assert len(events) == STREAM_EVENTS
    assert all(is_one_event(event) for event in events)
    assert events[-1] == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


def test_fake_upstream_writes_each_event_on_its_own() -> None:
    """A streamed answer is head, then one write per event, then the last chunk."""
    up = upstream.Upstream(set())
    up.replies = sse_shapes.Replies(sse_shapes.Shape(events=EVENTS, event_bytes=50))
    writes = answered(up, request(stream=True))
    assert status_of(writes[0]) == 200
    assert len(writes) == 1 + STREAM_EVENTS + 1
    assert all(is_one_event(one_chunk(write)) for write in writes[1:-1])
    assert writes[-1] == sse_shapes.LAST_CHUNK
    small = answered(up, request(stream=False))
    assert len(small) == 1
    assert b'"end_turn"' in small[0]


def test_fake_upstream_refuses_what_the_real_api_refuses() -> None:
    """No credential, an unknown OAuth token, or one without the OAuth beta: 401."""
    up = upstream.Upstream({"sk-ant-oat01-known"})
    known = (("authorization", "Bearer sk-ant-oat01-known"),)
    assert status_of(answered(up, request(stream=False, credentials=()))[0]) == 401
    unknown = (("authorization", "Bearer sk-ant-oat01-other"),)
    assert status_of(answered(up, request(stream=False, credentials=unknown))[0]) == 401
    no_beta = request(stream=False, credentials=known).replace(b"anthropic-beta", b"x-beta")
    assert status_of(answered(up, no_beta)[0]) == 401
    assert status_of(answered(up, request(stream=False, credentials=known))[0]) == 200
    assert up.stats.requests == 1
    assert up.stats.refused == 3


@pytest.fixture(scope="module")
def relay_and_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """The fake upstream and the bare relay as the benchmark runs them (child processes)."""
    workdir: Path = tmp_path_factory.mktemp("framing")
    upstream_port, relay_port = procs.free_port(), procs.free_port()
    fake = procs.spawn("upstream", ["-m", "bench.upstream", "--port", str(upstream_port)], workdir)
    relay = procs.start_relay(workdir, relay_port, upstream_port)
    try:
        wait_accepting(fake, upstream_port, 20)
        wait_accepting(relay, relay_port, 20)
        yield upstream_port, relay_port
    finally:
        relay.stop()
        fake.stop()


async def exchange(port: int, raw: bytes) -> bytes:
    """One request on a fresh connection; the whole chunked response."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        response = b""
        while not response.endswith(b"\r\n0\r\n\r\n"):
            data = await stream.receive_some(65536)
            assert data, "closed before the end of the response"
            response += data
        return response


async def test_bare_relay_passes_each_event_in_its_own_chunk(
    relay_and_upstream: tuple[int, int],
) -> None:
    """Through the bare relay, as from the upstream itself, a chunk holds exactly one event."""
    upstream_port, relay_port = relay_and_upstream
    shape = b'{"events":%d,"event_bytes":200}' % EVENTS
    config = b"POST /bench/config HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(shape)
    with trio.fail_after(20):
        stream = await trio.open_tcp_stream("127.0.0.1", upstream_port)
        async with stream:
            await stream.send_all(config + shape)
            assert b" 200 " in await stream.receive_some(65536)
        for port in (upstream_port, relay_port):
            events = chunks_of(await exchange(port, request(stream=True)))
            assert len(events) == STREAM_EVENTS
            assert all(is_one_event(event) for event in events)
