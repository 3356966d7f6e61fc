"""The chunked body decoder: every body byte a read brought comes out of that read, the
framing is as strict as h11's, and nothing but h11.RemoteProtocolError escapes."""

from __future__ import annotations

import itertools

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_pool.server.chunked import MAX_LINE_BYTES, MAX_TRAILER_BYTES, ChunkedDecoder

payloads = st.lists(st.binary(min_size=1, max_size=300), max_size=20)
extensions = st.sampled_from([b"", b";a=1", b' ; name="v"', b"\t"])
trailers = st.sampled_from([b"", b"x-checksum: 1\r\n", b"a: 1\r\nb: 2\r\n"])


def encode(chunks: list[bytes], ext: bytes, trailer: bytes) -> tuple[bytes, list[int]]:
    """The wire bytes, and for each wire byte how many body bytes lie at or before it."""
    wire = bytearray()
    body_upto: list[int] = []
    body = 0
    for piece in chunks:
        line = b"%x%s\r\n" % (len(piece), ext)
        wire += line
        body_upto += [body] * len(line)
        for _ in piece:
            body += 1
            body_upto.append(body)
        wire += piece + b"\r\n"
        body_upto += [body] * 2
    end = b"0\r\n" + trailer + b"\r\n"
    wire += end
    body_upto += [body] * len(end)
    return bytes(wire), body_upto


@given(payloads, extensions, trailers, st.lists(st.integers(1, 400), max_size=40))
def test_each_read_gives_every_body_byte_it_brought(
    chunks: list[bytes], ext: bytes, trailer: bytes, cuts: list[int]
) -> None:
    """Whatever the reads' sizes, after each feed the output is exactly the body bytes the
    wire held so far (nothing held back), and the decoder ends cleanly."""
    wire, body_upto = encode(chunks, ext, trailer)
    body = b"".join(chunks)
    decoder = ChunkedDecoder()
    out = b""
    at = 0
    for size in [*cuts, len(wire)]:
        if at >= len(wire):
            break
        piece = wire[at : at + size]
        at += len(piece)
        out += decoder.feed(piece)
        assert out == body[: body_upto[at - 1]]
    assert out == body
    assert decoder.done
    assert decoder.trailing == b""


@given(st.binary(max_size=2000), st.integers(1, 64))
def test_only_protocol_errors_escape(data: bytes, size: int) -> None:
    """Arbitrary bytes either decode or raise h11.RemoteProtocolError, nothing else."""
    decoder = ChunkedDecoder()
    try:
        for at in range(0, len(data), size):
            decoder.feed(data[at : at + size])
    except h11.RemoteProtocolError:
        pass


@pytest.mark.parametrize(
    "wire",
    [
        b"5\r\nhello\nx",  # chunk data followed by a bare LF
        b"0x5\r\nhello\r\n",  # int()'s prefix is not HTTP
        b"-5\r\nhello\r\n",
        b"+5\r\nhello\r\n",
        b"5_0\r\n",
        b" 5\r\nhello\r\n",
        b"5\nhello\r\n",  # a size line ended by a bare LF
        b"zz\r\n",
        b"11111111111111111\r\n",  # more hex digits than any sane size
        b"0\r\nx-a: 1\nx-b: 2\r\n\r\n",  # a bare LF inside the trailers
    ],
)
def test_malformed_framing_is_refused(wire: bytes) -> None:
    """Framing h11 refuses is refused."""
    with pytest.raises(h11.RemoteProtocolError):
        ChunkedDecoder().feed(wire)


def test_size_lines_and_trailers_are_bounded() -> None:
    """An endless size line or trailer section is refused instead of buffered forever."""
    with pytest.raises(h11.RemoteProtocolError, match="too long"):
        ChunkedDecoder().feed(b"1" + b";" * MAX_LINE_BYTES)
    decoder = ChunkedDecoder()
    decoder.feed(b"0\r\n")
    for _ in range(MAX_TRAILER_BYTES // 1000 - 1):
        decoder.feed(b"x-a: " + b"b" * 1000 + b"\r\n")
    with pytest.raises(h11.RemoteProtocolError, match="too large"):
        decoder.feed(b"x-a: " + b"b" * 2000)


def test_bytes_after_the_body_are_kept_aside() -> None:
    """Bytes after the last chunk are not body: they are kept (so the connection is not reused)."""
    decoder = ChunkedDecoder()
    assert decoder.feed(b"2\r\nhi\r\n0\r\n\r\nHTTP/1.1") == b"hi"
    assert decoder.done
    assert decoder.trailing == b"HTTP/1.1"


def h11_refuses_trailer(trailer: bytes) -> bool:
    """Whether h11 refuses a request body ending in these trailer lines."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n" + trailer + b"\r\n"
    )
    try:
        while not isinstance(conn.next_event(), h11.EndOfMessage):
            pass
    except h11.RemoteProtocolError:
        return True
    return False


@pytest.mark.parametrize(
    "trailer",
    [
        b"no colon\r\n",
        b"x-a: \x00\r\n",  # NUL in a value (RFC 9110 §5.5)
        b"x a: b\r\n",
        b"x-a : b\r\n",  # a space before the colon (RFC 9112 §5: 400)
        b": b\r\n",
        b" x-a: b\r\n",  # a continuation line first
        b"x-\xe9: b\r\n",
        b"x-a: a\rb\r\n",
    ],
)
def test_malformed_trailer_lines_are_refused_as_h11_refuses_them(trailer: bytes) -> None:
    """A trailer line that is not a field line is refused, as h11 refuses it (they used
    to be dropped unread: the security audit's trailer cases, replayed on our parser)."""
    assert h11_refuses_trailer(trailer)
    with pytest.raises(h11.RemoteProtocolError, match="trailer"):
        ChunkedDecoder().feed(b"3\r\nabc\r\n0\r\n" + trailer + b"\r\n")


@pytest.mark.parametrize("trailer", [b"x-a: b\r\n", b"x-a:b \r\n", b"x-a:\r\n", b"a: \xe9\x7f\r\n"])
def test_trailer_lines_h11_accepts_are_accepted(trailer: bytes) -> None:
    """Well-formed trailer lines (obs-text and an empty value included) end the body."""
    assert not h11_refuses_trailer(trailer)
    decoder = ChunkedDecoder()
    assert decoder.feed(b"3\r\nabc\r\n0\r\n" + trailer + b"\r\n") == b"abc"
    assert decoder.done


def test_a_long_trailer_line_is_refused_before_it_ends() -> None:
    """One trailer line longer than MAX_LINE_BYTES is refused while still arriving: an
    unfinished line is searched again at each read, so its length must stay small."""
    decoder = ChunkedDecoder()
    decoder.feed(b"0\r\nx-a: ")
    for _ in range(MAX_LINE_BYTES - len(b"x-a: ")):
        decoder.feed(b"b")
    with pytest.raises(h11.RemoteProtocolError, match="trailer line too long"):
        decoder.feed(b"b")


# Chunk data that looks like framing ("\r\n1f\r\n"), size lines in every legal spelling, and
# sizes off by one: what could fool the whole-chunks path (a regex split checked afterwards).
TRICKY_DATA = st.lists(
    st.sampled_from([b"\r\n", b"\n", b"\r", b"1f", b"0", b"A", b"x", b"\r\n0\r\n", b"\r\n3\r\n"]),
    min_size=1,
    max_size=8,
).map(b"".join)
SIZE_SPELLINGS = st.sampled_from([b"%x", b"%X", b"00%x", b"%x;e=1", b"%x "])


@st.composite
def near_chunked_wires(draw: st.DrawFn) -> bytes:
    """Chunked bodies, mostly valid: some sizes are off by one, some chunks lack their CRLF,
    the last chunk may be missing, and bytes may follow the body."""
    wire = b""
    for payload in draw(st.lists(TRICKY_DATA, max_size=12)):
        size = len(payload) + draw(st.sampled_from([0, 0, 0, 0, 0, 0, -1, 1]))
        wire += draw(SIZE_SPELLINGS) % max(size, 0) + b"\r\n" + payload
        wire += draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b""]))
    wire += draw(st.sampled_from([b"0\r\n\r\n", b"0\r\nx-a: 1\r\n\r\n", b""]))
    return wire + draw(st.sampled_from([b"", b"5\r\nhello\r\n", b"HTTP/1.1"]))


def decode(decoder: ChunkedDecoder, reads: list[bytes]) -> tuple[bytes, bool, bool]:
    """The body bytes, whether the framing was refused, and whether the body ended."""
    out = b""
    try:
        for piece in reads:
            out += decoder.feed(piece)
    except h11.RemoteProtocolError:
        return b"", True, False
    return out, False, decoder.done


@settings(max_examples=500, deadline=None)
@given(near_chunked_wires(), st.lists(st.integers(0, 200), max_size=5))
def test_any_reads_decode_as_single_bytes_decode(wire: bytes, cuts: list[int]) -> None:
    """However the wire is cut into reads, the body, the refusal and the end are those of
    a byte-at-a-time decode (which never takes the whole-chunks path: no read holds a
    whole chunk)."""
    reads = [wire[a:b] for a, b in itertools.pairwise([0, *sorted(cuts), len(wire)])]
    one_by_one = [wire[i : i + 1] for i in range(len(wire))]
    assert decode(ChunkedDecoder(), reads) == decode(ChunkedDecoder(), one_by_one)
