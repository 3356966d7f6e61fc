"""An incremental Server-Sent Events parser: bytes in, in any split, complete events out.

It follows the WHATWG event-stream rules the three providers' streams rely on: lines end in
``\\n`` or ``\\r\\n``; ``data:`` lines of one event are joined with ``\\n``; ``:`` starts a
comment; a blank line ends the event; an event without data is not dispatched; an unfinished
event at the end of the stream is dropped. (A lone ``\\r`` as a line end is not supported:
none of the providers sends it.)

Each byte is scanned once, so feeding a stream costs O(n) however it is split.
"""

from __future__ import annotations

from typing import NamedTuple

import attrs

from trio_pool.errors import UpstreamProtocolError

DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


class SseEventTooLarge(UpstreamProtocolError):
    """One SSE event grew past the parser's limit; the parser skips it up to its end.

    ``events`` holds the events the same chunk completed, which are not lost.
    """

    def __init__(self, message: str, events: list[SseEvent]) -> None:
        self.events = events
        super().__init__(message)


class SseEvent(NamedTuple):
    event: str  # the ``event:`` field, "message" when absent
    data: str


@attrs.define(eq=False)
class SseParser:
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    # When set, named events with another name are not dispatched (unnamed ones always
    # are): an observer skips the text deltas without decoding them.
    names: frozenset[bytes] | None = None
    _buffer: bytearray = attrs.field(factory=bytearray, init=False)  # the unfinished line
    _data: list[bytes] = attrs.field(factory=list, init=False)
    _event: bytes = attrs.field(default=b"", init=False)
    _size: int = attrs.field(default=0, init=False)  # bytes of the current event so far
    _skipping: bool = attrs.field(default=False, init=False)  # inside an oversized event
    _line_dropped: bool = attrs.field(default=False, init=False)  # unfinished line cut off

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events completed by ``chunk``.

        Raises SseEventTooLarge (carrying the events completed anyway) when an event passes
        ``max_event_bytes``; that event is dropped and parsing resumes after its end.
        """
        buffer = self._buffer
        start = len(buffer)
        buffer += chunk
        end = buffer.rfind(b"\n", start)
        events: list[SseEvent] = []
        overflowed = False
        if end >= 0:
            # Every complete line at once: one split in C, then a tight loop (this runs for
            # every chunk of every stream).
            region = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            if b"\r" in region:
                region = region.replace(b"\r\n", b"\n")
            lines = region.split(b"\n")
            lines.pop()  # the empty piece after the final newline
            data, event, size, skipping = self._data, self._event, self._size, self._skipping
            limit, names = self.max_event_bytes, self.names
            dropped = self._line_dropped
            for line in lines:
                if not line and not dropped:
                    if data and not skipping and (names is None or not event or event in names):
                        text = b"\n".join(data).decode("utf-8", "replace")
                        events.append(SseEvent(event.decode("utf-8", "replace") or "message", text))
                    data, event, size, skipping = [], b"", 0, False
                    continue
                dropped = False
                if skipping:
                    continue
                size += len(line) + 1
                if size > limit:
                    data, event, skipping, overflowed = [], b"", True, True
                elif line.startswith(b"data:"):
                    value = line[5:]
                    data.append(value[1:] if value[:1] == b" " else value)
                elif line.startswith(b"event:"):
                    value = line[6:]
                    event = value[1:] if value[:1] == b" " else value
                elif line == b"data":
                    data.append(b"")
                # ":" comments (heartbeats), "id", "retry" and unknown fields: nothing to keep.
            self._data, self._event, self._size, self._skipping = data, event, size, skipping
            self._line_dropped = False
        if buffer and (self._skipping or self._size + len(buffer) > self.max_event_bytes):
            # Never hold more than the limit: drop the unfinished line, remember we did.
            overflowed = overflowed or not self._skipping
            self._data, self._event, self._skipping = [], b"", True
            self._line_dropped = True
            del buffer[:]
        if overflowed:
            raise SseEventTooLarge(
                f"an SSE event is larger than {self.max_event_bytes} bytes", events
            )
        return events
