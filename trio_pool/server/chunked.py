"""Decoding a chunked body (RFC 9112 §7.1) a whole read at a time: the upstream client's responses
and the server's requests. Pure, no I/O.

Why not h11 here: h11 decodes chunked bodies correctly, but it turns every chunk into an
event that walks its state machine, about 4 µs a chunk. The providers flush one chunk per
SSE event, so for a 200-event stream that was most of the proxy's CPU. This decoder takes a
read, finds the chunk boundaries (for a read of many whole chunks, with one regex split
checked against the sizes: ``_whole_chunks``), and returns the read's body bytes as one
block (joined once). h11 still parses the head and decides the framing and the
keep-alive; this only replaces its reader for the body of a chunked response.

As strict as h11 0.16 where it matters: a chunk size is hex digits (optionally followed by
``;extensions``), every line ends in CRLF (a bare LF after chunk data is refused), a trailer
line is a field line (``token ":" OWS value OWS``, as in a head), and the size lines and
trailers are bounded. Chunk extensions and trailers are read and dropped.
A malformed body raises ``h11.RemoteProtocolError``, which upstream/errors.py maps as it
maps every malformed answer.
"""

from __future__ import annotations

import re

import h11

# A size line longer than this is not a chunk size (h11 bounds it the same way).
MAX_LINE_BYTES = 4 * 1024
MAX_TRAILER_BYTES = 64 * 1024
# The grammar of a head's field lines (server/http1.py), without obs-fold: RFC 9112 §5 has a
# server refuse a field with a space before the colon, and RFC 9110 §5.5 one with a NUL, CR or
# LF in its value, trailers included. h11 refuses them too.
_TRAILER_LINE = re.compile(
    rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+:[ \t]*(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?[ \t]*"
)
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\r\n]*)?[ \t]*")
# The size lines real servers send (bare hex digits): one match finds and checks the line.
_PLAIN_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})\r\n")
# The CRLF that ends a chunk's data and the plain size line of the next chunk.
_NEXT_SIZE_LINE = re.compile(rb"\r\n([0-9A-Fa-f]{1,16})\r\n")


# States, as ints: this loop runs once per chunk, and enum lookups cost.
_SIZE = 1  # expecting a chunk-size line
_DATA = 2  # inside chunk data
_DATA_END = 3  # expecting the CRLF after chunk data
_TRAILERS = 4  # after the last chunk: trailer lines until an empty one
_DONE = 5


class ChunkedDecoder:
    """Feed it the bytes after the head, read by read; it returns each read's body bytes."""

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0  # bytes left in the current chunk's data
        self._pending = b""  # an incomplete line (or CRLF) carried to the next read
        self._trailer_bytes = 0
        self.trailing = b""  # bytes after the end of the body (none from a sane server)

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: bytes) -> bytes:
        """The body bytes in ``data`` (b"" when it held only framing)."""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        elif self._state == _SIZE:
            # The most common read of all: exactly one whole chunk (a server that flushes
            # each SSE event, read as fast as it writes).
            match = _PLAIN_SIZE_LINE.match(data)
            if match is not None:
                start = match.end()
                stop = start + int(match[1], 16)
                if stop > start and stop + 2 == len(data) and data.endswith(b"\r\n"):
                    return data[start:stop]
        view = memoryview(data)
        out: list[bytes | memoryview] = []
        i, n = 0, len(data)
        state = self._state
        find, size_line, plain = data.find, _SIZE_LINE.fullmatch, _PLAIN_SIZE_LINE.match
        startswith = data.startswith
        whole_tried = False  # at most once per read: a failed try costs a scan of the read
        while i < n:
            if state == _SIZE:
                if not whole_tried:
                    whole_tried = True
                    bodies, i = _whole_chunks(data, i)
                    if bodies:
                        out += bodies
                        if i == n:
                            break
                match = plain(data, i)
                if match is not None:
                    i = match.end()
                else:
                    end = find(b"\r\n", i, i + MAX_LINE_BYTES)
                    if end < 0:
                        if n - i >= MAX_LINE_BYTES:
                            raise h11.RemoteProtocolError("chunk size line too long")
                        self._pending = data[i:]
                        break
                    match = size_line(data, i, end)
                    if match is None:
                        raise h11.RemoteProtocolError("malformed chunk size line")
                    i = end + 2
                size = int(match[1], 16)
                if not size:
                    state = _TRAILERS
                    continue
                stop = i + size
                if stop + 2 <= n and startswith(b"\r\n", stop):
                    # The common case: the whole chunk is in this read.
                    out.append(view[i:stop])
                    i = stop + 2
                    continue
                self._remaining = size
                state = _DATA
            elif state == _DATA:
                take = min(self._remaining, n - i)
                out.append(view[i : i + take])
                i += take
                self._remaining -= take
                if not self._remaining:
                    state = _DATA_END
            elif state == _DATA_END:
                if n - i < 2:
                    self._pending = data[i:]
                    break
                if data[i : i + 2] != b"\r\n":
                    raise h11.RemoteProtocolError("chunk data not followed by CRLF")
                i += 2
                state = _SIZE
            elif state == _TRAILERS:
                end = find(b"\r\n", i)
                if end == i:  # the empty line that ends the body
                    i += 2
                    state = _DONE
                    continue
                line_end = n if end < 0 else end
                if self._trailer_bytes + line_end - i > MAX_TRAILER_BYTES:
                    raise h11.RemoteProtocolError("chunked trailers too large")
                # An unfinished line is carried over and searched again with the next read:
                # bounded per line, so a trailer trickled a byte at a time costs linear time.
                if line_end - i > MAX_LINE_BYTES:
                    raise h11.RemoteProtocolError("chunked trailer line too long")
                if end < 0:
                    self._pending = data[i:]
                    break
                if _TRAILER_LINE.fullmatch(data, i, end) is None:
                    # A bare LF, a NUL, a space before the colon, an obs-fold...
                    raise h11.RemoteProtocolError("malformed chunked trailer line")
                self._trailer_bytes += end + 2 - i
                i = end + 2
            else:  # done: nothing may follow the body before our next request
                self.trailing = bytes(data[i:])
                break
        self._state = state
        if not out:
            return b""
        return bytes(out[0]) if len(out) == 1 else b"".join(out)


def _whole_chunks(data: bytes, at: int) -> tuple[list[bytes], int]:
    """The data of the whole chunks with plain size lines from ``data[at:]`` on, and where
    they end; ``([], at)`` when they cannot be had this way.

    A read of a stream holds a hundred chunks; walking them one by one in Python cost about
    0.5 µs each. Here one regex split (in C) guesses the framing, assuming no chunk's data
    holds CRLF, hex digits, CRLF; the guess is then checked, also in C: each chunk but the
    last is exactly as long as its size line says, so the bytes parse exactly as the loop
    in ``feed`` would parse them, else nothing is taken. The last chunk (possibly cut by
    the read, or the zero-size one) is taken only when it ends the read exactly.
    """
    if not at:
        framed = b"\r\n" + data
    elif at >= 2 and data.startswith(b"\r\n", at - 2):
        framed = data[at - 2 :]  # after the CRLF of a chunk cut by the last read: one copy
    else:
        framed = b"\r\n" + data[at:]
    pieces = _NEXT_SIZE_LINE.split(framed)
    # ["", size, data, size, data, ..., size, rest of the read]
    if len(pieces) < 3 or pieces[0]:
        return [], at  # not a plain size line at ``at``
    bodies = pieces[2:-2:2]
    lengths = tuple(map(len, bodies))
    # A zero-size chunk ends the body: what follows it is trailers, never chunk data.
    if not all(lengths):
        return [], at
    # Each size line against its chunk's length, in two C calls (int() per line cost twice
    # as much): the lengths in hex, one a line, equal the size lines (hex digits, no
    # newline) lower-cased. A size with leading zeros does not compare equal: the loop in
    # ``feed`` reads such chunks.
    if b"%x\n" * len(lengths) % lengths != b"\n".join(pieces[1:-2:2]).lower() + b"\n":
        return [], at
    last, rest = pieces[-2], pieces[-1]
    size = int(last, 16)
    if size and len(rest) == size + 2 and rest.endswith(b"\r\n"):
        bodies.append(rest[:-2])
        return bodies, len(data)
    return bodies, len(data) - len(rest) - len(last) - 2
