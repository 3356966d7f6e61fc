"""The live request feed: every proxied request's start and end, fanned out to the page.

``publish`` is called from the request flow and never waits: each subscriber has a bounded
buffer, and one that falls behind loses events (counted) rather than slowing a request.
``serve_live`` streams the feed as Server-Sent Events (``GET /api/live``).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from trio_pool.server.connection import Exchange
from trio_pool.server.server import Shutdown
from trio_pool.usage.ledger import LedgerRow

log = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 256
RECENT_ENDS = 200
PING_S = 15.0

Event = tuple[str, dict[str, Any]]
SSE_HEADERS = [
    ("content-type", "text/event-stream; charset=utf-8"),
    ("cache-control", "no-store"),
    ("x-accel-buffering", "no"),  # a reverse proxy in front must not hold events back
]


def start_document(
    request_id: int, at: float, provider: str, user: str | None, model: str | None, path: str
) -> dict[str, Any]:
    """The "start" event of a request (the contract's LIVE start)."""
    return {
        "id": request_id,
        "at": at,
        "provider": provider,
        "user": user,
        "model": model,
        "path": path,
    }


def end_document(start: dict[str, Any], row: LedgerRow) -> dict[str, Any]:
    """The "end" event: the start's fields plus what the ledger row says about the outcome."""
    usage = row.usage
    return {
        **start,
        "model": row.model if row.model is not None else start.get("model"),
        "account": row.account,
        "status": row.status,
        "attempts": row.attempts,
        "failures": list(row.failures),
        "ttfb_ms": row.ttfb_ms,
        "duration_ms": row.duration_ms,
        "input": usage.input,
        "cached": usage.cached,
        "output": usage.output,
        "reasoning": usage.reasoning,
        "bytes": row.bytes,
    }


@attrs.define(eq=False)
class Subscription:
    """One subscriber's buffer; iterate it for ``(kind, document)``."""

    _receive: trio.MemoryReceiveChannel[Event]
    _send: trio.MemorySendChannel[Event]
    dropped: int = 0  # events this subscriber lost by falling behind

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._receive.__aiter__()

    async def receive(self) -> Event:
        """The next event; trio.EndOfChannel once the subscription was stopped and drained."""
        return await self._receive.receive()

    def offer(self, event: Event) -> bool:
        """Buffer ``event`` without waiting; False (counted) when the buffer is full.

        Raises trio.ClosedResourceError / BrokenResourceError once the subscription ended.
        """
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1
            return False
        return True

    def stop(self) -> None:
        """No more events: iteration ends once what is buffered has been read."""
        self._send.close()


@attrs.define(eq=False)
class LiveFeed:
    """Fan-out of request events to any number of slow or fast subscribers."""

    buffer: int = SUBSCRIBER_BUFFER
    keep: int = RECENT_ENDS
    dropped: int = 0  # events lost by slow subscribers, over all of them
    _subscribers: set[Subscription] = attrs.field(factory=set, init=False)
    _recent: deque[dict[str, Any]] = attrs.field(init=False)
    _next_id: int = attrs.field(default=1, init=False)

    @_recent.default
    def _recent_default(self) -> deque[dict[str, Any]]:
        return deque(maxlen=self.keep)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def next_id(self) -> int:
        """A fresh request id for start_document (unique within this process)."""
        request_id = self._next_id
        self._next_id += 1
        return request_id

    def publish(self, kind: str, document: dict[str, Any]) -> None:
        """Hand the event to every subscriber without waiting; a full buffer loses it."""
        if kind == "end":
            self._recent.appendleft(document)
        for sub in list(self._subscribers):
            try:
                if not sub.offer((kind, document)):
                    self.dropped += 1
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(sub)

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` (at most ``keep``) "end" documents, newest first."""
        return list(self._recent)[: max(0, limit)]

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """Receive every event published while inside the block."""
        send, receive = trio.open_memory_channel[Event](self.buffer)
        sub = Subscription(receive, send)
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)
            send.close()
            receive.close()


def sse_event(kind: str, document: dict[str, Any]) -> bytes:
    # json.dumps never writes a raw newline, so one data: line holds the whole document.
    data = json.dumps(document, separators=(",", ":"))
    return f"event: {kind}\ndata: {data}\n\n".encode()


async def serve_live(
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
