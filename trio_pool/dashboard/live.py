"""GET /api/live: the live request feed (``usage.live``) as Server-Sent Events."""

from __future__ import annotations

import json
from typing import Any

import trio

from trio_pool.server.connection import Exchange
from trio_pool.server.server import Shutdown
from trio_pool.usage.live import Event, LiveFeed

PING_S = 15.0
SSE_HEADERS = [
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-accel-buffering", "no"),  # a reverse proxy in front must not hold events back
]


def sse_event(kind: str, document: dict[str, Any]) -> bytes:
    # json.dumps never writes a raw newline, so one data: line holds the whole document.
    data = json.dumps(document, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


async def relay_live(
    ex: Exchange,
    feed: LiveFeed,
    shutdown: Shutdown,
    *,
    ping_s: float = PING_S,
    only_user: str | None = None,
) -> None:
    """Stream the feed as text/event-stream until the client leaves or shutdown begins.

    ``only_user``: only that user's requests (a plain user's view).
    The connection cancels this handler when the client hangs up (once the request body is
    read, hence the read below). On shutdown the stream ends cleanly at once, so an open
    dashboard never holds the server up until the grace deadline.
    """
    await ex.read_body()
    await ex.start_response(200, SSE_HEADERS)
    await ex.send(b"retry: 3000\n: connected\n\n")
    async with feed.subscribe() as sub, trio.open_nursery() as nursery:

        async def stop_on_shutdown() -> None:
            await shutdown.requested.wait()
            sub.stop()

        nursery.start_soon(stop_on_shutdown)
        while True:
            event: Event | None = None
            with trio.move_on_after(ping_s):
                try:
                    event = await sub.receive()
                except trio.EndOfChannel:
                    break
            if event is not None and only_user is not None and event[1].get("user") != only_user:
                continue  # a plain user's page sees their own requests only
            # Writes happen outside the wait's scope: a cancelled write would cut an event.
            await ex.send(b": ping\n\n" if event is None else sse_event(*event))
        nursery.cancel_scope.cancel()
    await ex.end()
