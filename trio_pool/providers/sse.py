"""An incremental Server-Sent Events parser: bytes in, in any split, complete events out.

It follows the WHATWG event-stream rules the three providers' streams rely on: lines end in
``\\n`` or ``\\r\\n``; ``data:`` lines of one event are joined with ``\\n``; ``:`` starts a
comment; a blank line ends the event; an event without data is not dispatched; an unfinished
event at the end of the stream is dropped. (A lone ``\\r`` as a line end is not supported:
none of the providers sends it.)

Each byte is scanned once, so feeding a stream costs O(n) however it is split.

With a name filter, runs of complete events that are named and not wanted (Claude's
``content_block_delta``, most of a stream) are stepped over by one regex match in C, never
split into lines in Python: only the events worth reading, and the unfinished one at the end
of a read, go through the line loop.
"""

from __future__ import annotations

import functools
import re
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


@functools.lru_cache(maxsize=16)
def _skippable(names: frozenset[bytes]) -> re.Pattern[bytes]:
    """A run of complete events each named by one ``event:`` line, with a name not in
    ``names``, followed by non-empty lines that are not ``event:`` lines, then a blank line.
    Built once per set of names (each provider has one)."""
    wanted = b"|".join(re.escape(name) for name in sorted(names))
    # " ?+" is possessive: backing off the space would let " message_stop" pass as a name.
    # The other quantifiers are possessive because backing off can never help them (a line
    # ends at its first newline, an event at its first blank line), and sre then skips
    # saving the backtracking points: about 20 % less time per byte.
    event = rb"event: ?+(?!(?:" + wanted + rb")\n)[^\n]++\n(?:(?!event:)[^\n]++\n)*+\n"
    return re.compile(rb"(?:" + event + rb")++")


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
    _skip: re.Pattern[bytes] | None = attrs.field(default=None, init=False)

    def __attrs_post_init__(self) -> None:
        if self.names is not None:
            self._skip = _skippable(self.names)

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events completed by ``chunk``.

        Raises SseEventTooLarge (carrying the events completed anyway) when an event passes
        ``max_event_bytes``; that event is dropped and parsing resumes after its end.
        """
        buffer = self._buffer
        events: list[SseEvent] = []
        overflowed = False
        if not buffer and chunk.endswith(b"\n"):
            # The common case: the read ended at the end of a line, nothing was held back.
            region = bytes(chunk)
        else:
            # Every complete line at once (this runs for every read of every stream); only
            # the unfinished line is kept between reads, never a copy of the whole read.
            end = chunk.rfind(b"\n")
            if end < 0:
                buffer += chunk
                region = b""
            else:
                region = bytes(chunk[: end + 1])
                if buffer:
                    region = bytes(buffer) + region
                    del buffer[:]
                buffer += chunk[end + 1 :]
        if region:
            if b"\r" in region:
                region = region.replace(b"\r\n", b"\n")
            skip = self._skip
            if skip is None:
                overflowed = self._lines(region, events)
            else:
                at = 0
                if not (self._data or self._event or self._size or self._skipping):
                    # Most reads: unwanted events only, ending with the read (a read of one
                    # event each is common), so one match and no call to _skim.
                    run = skip.match(region)
                    if run is not None:
                        at = run.end()
                if at < len(region):
                    overflowed = self._skim(region, at, events, skip)
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

    def _skim(
        self, region: bytes, at: int, events: list[SseEvent], skip: re.Pattern[bytes]
    ) -> bool:
        """``_lines`` over ``region[at:]`` except for the runs of unwanted events between
        events."""
        overflowed = False
        size = len(region)
        while at < size:
            if not self._data and not self._event and not self._size and not self._skipping:
                # Between two events: step over blank lines and unwanted events at once
                # (feed matched the run at the read's start: no byte is matched twice).
                while region.startswith(b"\n", at):
                    at += 1
                run = skip.match(region, at)
                if run is not None:
                    at = run.end()
                    continue
            end = region.find(b"\n\n", at)
            stop = size if end < 0 else end + 2
            overflowed = self._lines(region[at:stop], events) or overflowed
            at = stop
        return overflowed

    def _lines(self, region: bytes, events: list[SseEvent]) -> bool:
        """Complete lines (``region`` ends in a newline) into the current event and
        ``events``; True when an event passed the size limit."""
        lines = region.split(b"\n")
        lines.pop()  # the empty piece after the final newline
        data, event, size, skipping = self._data, self._event, self._size, self._skipping
        limit, names = self.max_event_bytes, self.names
        dropped = self._line_dropped
        overflowed = False
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
        return overflowed
