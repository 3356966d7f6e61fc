"""The body observer every provider uses: SSE or JSON bytes in, StreamEvents out.

The provider supplies a small handler that knows which events matter and what they mean.
This runs on every chunk of every stream, so events are filtered before any JSON parsing:
by their ``event:`` name when the stream names events, else by a substring of their data.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol

import attrs

from trio_pool.providers.base import StreamEvent
from trio_pool.providers.sse import SseEventTooLarge, SseParser
from trio_pool.providers.wire import header_map, json_object, json_value
from trio_pool.server.messages import Headers

# A non-streaming JSON body is held for its usage only up to this size; beyond it the
# observer stops buffering (the response itself is relayed untouched either way).
MAX_JSON_BODY_BYTES = 4 * 1024 * 1024


class EventHandler(Protocol):
    """One provider's reading of its response events."""

    @property
    def wanted_events(self) -> frozenset[str] | None:
        """SSE event names worth seeing (unnamed events are always seen); None for all."""
        ...

    def on_sse(self, event: str, data: str) -> StreamEvent | None: ...

    def on_end(self) -> StreamEvent | None:
        """The stream ended (whether or not it completed)."""
        ...

    def on_body(self, payload: Any) -> StreamEvent | None:
        """A whole non-SSE JSON body (None when it was not JSON)."""
        ...


@functools.lru_cache(maxsize=16)
def _encoded(names: frozenset[str]) -> frozenset[bytes]:
    return frozenset(name.encode() for name in names)


def parse_wanted(data: str, needles: tuple[str, ...]) -> dict[str, Any] | None:
    """``data`` as a JSON object when it contains one of ``needles``: the cheap substring
    check keeps json.loads off the events nobody needs."""
    for needle in needles:
        if needle in data:
            return json_object(data)
    return None


def is_event_stream(response_headers: Headers) -> bool:
    return is_event_stream_type(header_map(response_headers).get("content-type", ""))


def is_event_stream_type(content_type: str) -> bool:
    """Whether a Content-Type value names an SSE stream (media types ignore case)."""
    return content_type.strip().lower().startswith("text/event-stream")


def merge(first: StreamEvent | None, second: StreamEvent | None) -> StreamEvent | None:
    """Two events of one chunk as one: the later usage and quota, the first failure."""
    if first is None:
        return second
    if second is None:
        return first
    return StreamEvent(
        usage=second.usage or first.usage,
        quota=second.quota or first.quota,
        failure=first.failure or second.failure,
        complete=first.complete or second.complete,
    )


@attrs.define(eq=False)
class BodyObserver:
    """A StreamObserver over one response body, SSE or JSON."""

    handler: EventHandler
    sse: bool
    _parser: SseParser | None = attrs.field(default=None, init=False)  # made at the first read
    _body: bytearray | None = attrs.field(factory=bytearray, init=False)

    def _make_parser(self) -> SseParser:
        wanted = self.handler.wanted_events
        names = None if wanted is None else _encoded(wanted)
        self._parser = SseParser(names=names)
        return self._parser

    @classmethod
    def for_response(
        cls, handler: EventHandler, response_headers: Headers, *, sse: bool | None = None
    ) -> BodyObserver:
        """An observer for a response; ``sse`` overrides the content-type when known."""
        fields = header_map(response_headers)
        encoding = fields.get("content-encoding", "identity")
        if sse is None:
            sse = is_event_stream_type(fields.get("content-type", ""))
        observer = cls(handler, sse)
        if encoding.strip().lower() not in ("", "identity"):
            # A compressed body cannot be read cheaply: relay it without observing.
            observer._body = None
            observer.sse = False
        return observer

    def feed(self, data: bytes) -> StreamEvent | None:
        if not self.sse:
            if self._body is not None:
                if len(self._body) + len(data) > MAX_JSON_BODY_BYTES:
                    self._body = None
                else:
                    self._body += data
            return None
        if self._body is not None:
            self._body = None  # an SSE observer never needs the JSON buffer
        try:
            events = (self._parser or self._make_parser()).feed(data)
        except SseEventTooLarge as exc:
            events = exc.events  # the oversized event is skipped; the stream goes on
        result = None
        on_sse = self.handler.on_sse
        for event in events:
            result = merge(result, on_sse(event.event, event.data))
        return result

    def finish(self) -> StreamEvent | None:
        if self.sse:
            return self.handler.on_end()
        if not self._body:
            return None
        body, self._body = bytes(self._body), None
        return self.handler.on_body(json_value(body))
