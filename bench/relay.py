"""The bare relay: ``python -m bench.relay --port P --upstream-port U``.

The floor a trio + h11 proxy can reach, measured beside trio-pool in the same run: accept,
parse the request with h11, forward it over one keep-alive upstream connection per client
connection (no pooling, no accounts, no rewriting beyond hop-by-hop headers), and relay each
upstream read with one send. h11 parses both sides, so the relay re-frames what it relays:
every chunk it reads is sent on as one chunk, and an SSE event stays one HTTP chunk.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from functools import partial

import h11
import trio

READ_SIZE = 64 * 1024
HOP_BY_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade"}
# Dropped from requests and set again: the body is forwarded whole, with its length.
REQUEST_DROPPED = {*HOP_BY_HOP, b"host", b"content-length"}


class Closed(Exception):
    """The peer closed its side between two requests, or mid-message."""


async def next_event(conn: h11.Connection, stream: trio.SocketStream) -> h11.Event:
    """The next h11 event, reading from ``stream`` whenever h11 needs more bytes."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            if isinstance(event, h11.ConnectionClosed):
                raise Closed
            return event  # type: ignore[return-value]
        data = await stream.receive_some(READ_SIZE)
        conn.receive_data(data)  # b"" tells h11 the peer closed


def forwarded(
    headers: list[tuple[bytes, bytes]], host: bytes, body: bytes
) -> list[tuple[bytes, bytes]]:
    out = [(b"host", host), *((n, v) for n, v in headers if n not in REQUEST_DROPPED)]
    return [*out, (b"content-length", str(len(body)).encode())]


async def relay_response(
    up: h11.Connection, upstream: trio.SocketStream, down: h11.Connection, client: trio.SocketStream
) -> None:
    """Relay one response: everything parsed out of one upstream read goes in one send.

    A read may end inside an HTTP chunk (h11 then yields part of it): the part waits for the
    rest, so that each chunk, and so each SSE event, goes on as one chunk, whole.
    """
    partial = b""
    chunked = False
    while True:
        data = await upstream.receive_some(READ_SIZE)
        up.receive_data(data)
        out = []
        while (event := up.next_event()) is not h11.NEED_DATA:
            if isinstance(event, h11.Response):
                # Chunked on both sides unless the upstream gave a length.
                headers = [(n, v) for n, v in event.headers if n not in HOP_BY_HOP]
                chunked = not any(n == b"content-length" for n, _ in headers)
                if chunked:
                    headers.append((b"transfer-encoding", b"chunked"))
                out.append(down.send(h11.Response(status_code=event.status_code, headers=headers)))
            elif isinstance(event, h11.Data) and chunked:
                partial += event.data
                if event.chunk_end:
                    out.append(down.send(h11.Data(data=partial)))
                    partial = b""
            elif isinstance(event, h11.Data):
                out.append(down.send(event))
            elif isinstance(event, h11.EndOfMessage):
                if partial:  # a body that ended without its last chunk_end (read to close)
                    out.append(down.send(h11.Data(data=partial)))
                out.append(down.send(h11.EndOfMessage()))
                await client.send_all(b"".join(x for x in out if x))
                return
            elif isinstance(event, h11.ConnectionClosed):
                raise Closed
        if not data:
            raise Closed
        if out:
            await client.send_all(b"".join(x for x in out if x))


async def handle(upstream_port: int, client: trio.SocketStream) -> None:
    down = h11.Connection(h11.SERVER)
    host = f"127.0.0.1:{upstream_port}".encode()
    upstream = await trio.open_tcp_stream("127.0.0.1", upstream_port)
    up = h11.Connection(h11.CLIENT)
    async with client, upstream:
        with contextlib.suppress(Closed, trio.BrokenResourceError, h11.ProtocolError):
            while True:
                request = await next_event(down, client)
                assert isinstance(request, h11.Request)
                parts = []
                while not isinstance(event := await next_event(down, client), h11.EndOfMessage):
                    assert isinstance(event, h11.Data)
                    parts.append(event.data)
                body = b"".join(parts)
                headers = forwarded(list(request.headers), host, body)
                head = h11.Request(method=request.method, target=request.target, headers=headers)
                out = up.send(head) or b""
                out += (up.send(h11.Data(data=body)) or b"") + (up.send(h11.EndOfMessage()) or b"")
                await upstream.send_all(out)
                await relay_response(up, upstream, down, client)
                if down.our_state is h11.MUST_CLOSE or up.our_state is h11.MUST_CLOSE:
                    return
                down.start_next_cycle()
                up.start_next_cycle()


async def serve(port: int, upstream_port: int) -> None:
    """Serve until SIGINT or SIGTERM, then cancel every connection."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            handler = partial(handle, upstream_port)
            nursery.start_soon(
                partial(trio.serve_tcp, handler, port, host="127.0.0.1", backlog=1024)
            )
            async for _ in signals:
                nursery.cancel_scope.cancel()
                return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream-port", type=int, required=True)
    args = parser.parse_args(argv)
    trio.run(serve, args.port, args.upstream_port)


if __name__ == "__main__":
    main()
