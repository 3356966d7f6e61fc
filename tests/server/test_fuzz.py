"""Arbitrary bytes from a client: the server answers or closes, and never crashes."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_pool.server.connection import Exchange, HTTPConnection, ServerLimits

LIMITS = ServerLimits(max_body_bytes=4096, head_timeout_s=5, keepalive_idle_s=5)

# Mostly-HTTP-looking input reaches deeper into the parser than uniform random bytes.
REQUEST_LINES = st.sampled_from(
    [b"GET / HTTP/1.1\r\n", b"POST /v1/messages HTTP/1.1\r\n", b"GET /healthz HTTP/1.0\r\n", b""]
)
FIELDS = st.lists(
    st.tuples(
        st.sampled_from([b"host", b"content-length", b"transfer-encoding", b"expect", b"x", b""]),
        st.binary(max_size=20),
    ),
    max_size=5,
).map(lambda pairs: b"".join(k + b": " + v + b"\r\n" for k, v in pairs))


async def echo(ex: Exchange) -> None:
    body = await ex.read_body()
    await ex.respond(200, [("content-type", "text/plain")], body[:100])


async def feed(data: bytes) -> bytes:
    client, server = trio.testing.memory_stream_pair()
    connection = HTTPConnection(server, LIMITS)
    received = b""
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(connection.serve, echo, trio.Event())
            await client.send_all(data)
            await client.send_eof()
            while chunk := await client.receive_some(65536):
                received += chunk
    return received


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300))
async def test_random_bytes_never_crash_the_server(data: bytes) -> None:
    """Whatever arrives, serve() returns normally and anything it wrote is an HTTP response."""
    received = await feed(data)
    assert received == b"" or received.startswith(b"HTTP/1.1 ")


@settings(max_examples=150, deadline=None)
@given(line=REQUEST_LINES, fields=FIELDS, tail=st.binary(max_size=50))
async def test_malformed_heads_get_a_4xx_or_an_answer(
    line: bytes, fields: bytes, tail: bytes
) -> None:
    """Near-HTTP heads are served or refused with a 4xx (or 501 for a transfer coding
    h11 does not implement), never a server error."""
    received = await feed(line + fields + b"\r\n" + tail)
    if received:
        status = int(received[9:12])
        assert status < 500 or status == 501
