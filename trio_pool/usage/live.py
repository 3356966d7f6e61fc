"""The live request feed: every proxied request's start and end, fanned out to subscribers.

``publish`` is called from the request events and never waits: each subscriber has a
bounded buffer, and one that falls behind loses events (counted) rather than slowing a
request. The dashboard's ``relay_live`` streams it as Server-Sent Events (``GET /api/live``).
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from trio_pool.usage.ledger import LedgerRow, Tally

log = logging.getLogger(__name__)

SUBSCRIBER_BUFFER = 256
RECENT_ENDS = 200

Event = tuple[str, dict[str, Any]]


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


def start_of(tally: Tally) -> dict[str, Any]:
    """The "start" event of the request ``tally`` follows."""
    return start_document(tally.id, tally.at, tally.provider, tally.user, tally.model, tally.path)


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
        "client_format": row.client_format,
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
    # The last ends, newest first: a document, or the start and row it is built from when
    # nobody watched (most requests: building it then would be wasted on all but the last
    # ``keep`` of them, and those only if the page asks).
    _recent: deque[dict[str, Any] | tuple[dict[str, Any], LedgerRow]] = attrs.field(init=False)
    _next_id: int = attrs.field(default=1, init=False)

    @_recent.default
    def _recent_default(self) -> deque[dict[str, Any] | tuple[dict[str, Any], LedgerRow]]:
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

    def ended(self, tally: Tally, row: LedgerRow) -> None:
        """The "end" event of the request ``tally`` followed, which ended as ``row``."""
        if self._subscribers:
            self.publish("end", end_document(start_of(tally), row))
        else:
            self._recent.appendleft((start_of(tally), row))

    def recent(self, limit: int) -> list[dict[str, Any]]:
        """The last ``limit`` (at most ``keep``) "end" documents, newest first."""
        return [
            end if isinstance(end, dict) else end_document(*end)
            for end in itertools.islice(self._recent, max(0, limit))
        ]

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
