"""A fake upstream over memory streams: the client's connector hands it the other end.

Each connection the client opens runs ``script(index, conn)`` in the test's nursery, where
``conn`` speaks h11 as a server (or raw bytes, for broken answers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import h11
import trio
import trio.testing

from trio_pool.upstream.connect import Origin

CHUNKED_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)


def chunk(data: bytes) -> bytes:
    """``data`` framed as one HTTP chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class ServerSide:
    """The upstream's end of one connection."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER)
        self.requests: list[tuple[h11.Request, bytes]] = []

    async def request(self) -> tuple[h11.Request, bytes] | None:
        """The next request and its whole body; None when the client closed instead."""
        head: h11.Request | None = None
        body = b""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                self.h11.receive_data(bytes(await self.stream.receive_some(65536)))
            elif isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                self.requests.append((head, body))
                return head, body
            elif isinstance(event, h11.ConnectionClosed):
                return None
            else:
                raise AssertionError(f"a raw answer needs send_raw(..., whole=True): {event}")

    async def respond(self, status: int = 200, body: bytes = b"ok") -> None:
        """A whole response with Content-Length, then ready for the next request."""
        headers = [("content-length", str(len(body)))]
        data = self.h11.send(h11.Response(status_code=status, headers=headers))
        data += self.h11.send(h11.Data(data=body)) + self.h11.send(h11.EndOfMessage())
        await self.stream.send_all(data)
        self.h11.start_next_cycle()

    async def send_raw(self, data: bytes, *, whole: bool = False) -> None:
        """Bytes as they are; ``whole`` when they finish the answer (keep-alive goes on)."""
        await self.stream.send_all(data)
        if whole:
            unread = self.h11.trailing_data[0]
            self.h11 = h11.Connection(h11.SERVER)
            self.h11.receive_data(unread)

    async def wait_closed(self) -> None:
        """Until the client closes its end."""
        while await self.stream.receive_some(65536):
            pass

    async def aclose(self) -> None:
        await self.stream.aclose()


Script = Callable[[int, ServerSide], Awaitable[None]]


@attrs.define(eq=False)
class MemoryConnector:
    """A connector that opens memory stream pairs and serves each with ``script``."""

    nursery: trio.Nursery
    script: Script
    origins: list[Origin] = attrs.field(factory=list)
    servers: list[ServerSide] = attrs.field(factory=list)

    @property
    def opened(self) -> int:
        return len(self.origins)

    async def __call__(self, origin: Origin) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        side = ServerSide(server)
        self.origins.append(origin)
        self.servers.append(side)
        self.nursery.start_soon(self.script, len(self.origins) - 1, side)
        return client


async def serve_forever(index: int, conn: ServerSide) -> None:
    """Answer every request with 200 "ok" until the client closes."""
    while await conn.request() is not None:
        await conn.respond()
