"""server/http1.py held to h11's verdicts: the same heads accepted and refused, the same
fields, framing and keep-alive read from them, the same response bytes written."""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_pool.server import http1
from trio_pool.server.http1 import ProtocolError, SendError, ServerProtocol

MAX = 64 * 1024

NAMES = st.sampled_from(
    [b"host", b"Host", b"content-length", b"transfer-encoding", b"connection", b"expect", b"x-a"]
)
VALUES = st.sampled_from(
    [b"x", b"0", b"5", b" 5 ", b"5, 5", b"5,6", b"+5", b"chunked", b"Chunked", b"gzip", b"close",
     b"keep-alive", b"Close, keep-alive", b"100-continue", b"a\xa0", b"5\xa0", b"", b"a  b",
     b" a\tb ", b"\x00", b"a\rb", b"\x7f", b"\xff"]
)  # fmt: skip
SEPARATORS = st.sampled_from([b": ", b":", b" : ", b":\t"])
LINE_ENDS = st.sampled_from([b"\r\n", b"\n", b"\r\r\n"])
REQUEST_LINES = st.sampled_from(
    [b"GET / HTTP/1.1", b"POST /v1/messages HTTP/1.1", b"GET / HTTP/1.0", b"HEAD /x HTTP/1.1",
     b"GET  / HTTP/1.1", b"GET / HTTP/2.0", b"G@T / HTTP/1.1", b"GET /\x80 HTTP/1.1",
     b" GET / HTTP/1.1", b"GET / http/1.1", b"", b"CONNECT a:1 HTTP/1.1"]
)  # fmt: skip


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    end = draw(LINE_ENDS)
    lines = [draw(REQUEST_LINES)]
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.integers(0, 12)) == 0:
            lines.append(draw(st.sampled_from([b" folded", b"\tfolded", b"no colon"])))
        else:
            lines.append(draw(NAMES) + draw(SEPARATORS) + draw(VALUES))
    return end.join(lines) + end + draw(LINE_ENDS)


def h11_verdict(data: bytes) -> Any:
    """What h11 makes of a head: ("error", status) or the request as plain values."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX)
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError as exc:
        return ("error", exc.error_status_hint)
    if event is h11.NEED_DATA:
        return "need data"
    assert isinstance(event, h11.Request)
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
    keep_alive = conn.our_state is not h11.MUST_CLOSE and h11_keep_alive(event)
    return (
        event.method.decode(),
        event.target.decode("latin-1"),
        headers,
        event.http_version.decode(),
        keep_alive,
        conn.they_are_waiting_for_100_continue,
    )


def h11_keep_alive(event: h11.Request) -> bool:
    tokens = [
        t.strip().lower() for k, v in event.headers if k == b"connection" for t in v.split(b",")
    ]
    return b"close" not in tokens and event.http_version >= b"1.1"


def our_verdict(data: bytes) -> Any:
    proto = ServerProtocol(MAX)
    proto.receive_data(data)
    try:
        head = proto.next_request()
    except ProtocolError as exc:
        return ("error", exc.status_hint)
    if head is None:
        return "need data"
    # h11 keeps one Content-Length value where a header repeats it ("5, 5" -> "5").
    headers = tuple((k, v) for k, v in head.headers)
    return (
        head.method,
        head.target,
        headers,
        head.http_version,
        proto.keep_alive,
        proto.waiting_for_100_continue,
    )


@settings(max_examples=600, deadline=None)
@given(data=heads())
def test_heads_are_read_exactly_as_h11_reads_them(data: bytes) -> None:
    """Accepted by both with the same method, target, fields, version, keep-alive and
    100-continue; or refused by both with the same status (the 501s included)."""
    assert our_verdict(data) == h11_verdict(data)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_get_our_errors_only(data: bytes) -> None:
    """Any bytes: a head, a request for more, or ProtocolError; nothing else escapes."""
    proto = ServerProtocol(MAX)
    proto.receive_data(data)
    try:
        proto.next_request()
    except ProtocolError:
        pass


def verdict_read_in_pieces(data: bytes, cuts: list[int]) -> Any:
    """our_verdict, with the head arriving in reads cut at ``cuts``."""
    proto = ServerProtocol(MAX)
    at = 0
    try:
        for size in [*cuts, len(data)]:
            piece = data[at : at + size]
            at += len(piece)
            proto.receive_data(piece)
            head = proto.next_request()
            if head is not None or at >= len(data):
                break
    except ProtocolError as exc:
        return ("error", exc.status_hint)
    if head is None:
        return "need data"
    return (
        head.method,
        head.target,
        tuple(head.headers),
        head.http_version,
        proto.keep_alive,
        proto.waiting_for_100_continue,
    )


@settings(max_examples=300, deadline=None)
@given(data=heads(), cuts=st.lists(st.integers(1, 8), max_size=60))
def test_a_head_in_small_reads_is_read_as_h11_reads_it_whole(data: bytes, cuts: list[int]) -> None:
    """The search for the end of a head resumes where the last read left it (a trickled head
    costs linear time): cut anywhere, even inside "\r\n\r\n", the verdict is h11's on
    the whole head, refusals included (an early refusal of a bad first byte is the same
    400)."""
    assert verdict_read_in_pieces(data, cuts) == h11_verdict(data)


def test_a_trickled_head_then_a_pipelined_one_are_both_found() -> None:
    """After a head read a byte at a time, the next request's head is searched from its own
    start (the resumed search does not carry over)."""
    first = b"GET /a HTTP/1.1\r\nhost: x\r\n\r\n"
    second = b"GET /b HTTP/1.1\r\nhost: x\r\n\r\n"
    proto = ServerProtocol(MAX)
    heads_found = []
    for byte in first + second:
        proto.receive_data(bytes([byte]))
        if proto.request is None and (head := proto.next_request()) is not None:
            heads_found.append(head.target)
            assert proto.next_body() == b""
            proto.response_head(200, [("content-length", "0")])
            proto.end()
            assert proto.start_next_cycle()
    assert heads_found == ["/a", "/b"]


def test_a_head_larger_than_the_limit_is_431_whole_or_not() -> None:
    """Past max_head_bytes a head is refused with 431, arrived whole or still coming."""
    big = b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + b"a" * 200 + b"\r\n"
    for data in (big, big + b"\r\n"):
        proto = ServerProtocol(100)
        proto.receive_data(data)
        with pytest.raises(ProtocolError) as caught:
            proto.next_request()
        assert caught.value.status_hint == 431


def test_chunked_body_then_a_pipelined_request() -> None:
    """A chunked body is decoded and what follows it is the next request's head."""
    proto = ServerProtocol(MAX)
    proto.receive_data(
        b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nhost: x\r\n\r\n"
    )
    assert proto.next_request() is not None
    assert proto.next_body() == b"abc"
    assert proto.next_body() == b""
    proto.response_head(200, [("content-length", "0")])
    proto.end()
    assert proto.start_next_cycle()
    head = proto.next_request()
    assert head is not None
    assert head.target == "/next"


def test_a_body_cut_by_the_close_is_an_error() -> None:
    """The client closing mid-body is a ProtocolError, not a short body."""
    proto = ServerProtocol(MAX)
    proto.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nab")
    assert proto.next_request() is not None
    assert proto.next_body() == b"ab"
    assert proto.next_body() is None
    proto.receive_data(b"")
    with pytest.raises(ProtocolError):
        proto.next_body()


RESPONSES = [
    (200, [("content-type", "text/plain"), ("content-length", "3")], [b"abc"]),
    (200, [("content-type", "text/event-stream")], [b"data: 1\n\n", b"data: 2\n\n"]),
    (204, [("x-a", "1")], []),
    (304, [("content-length", "3")], []),
    (200, [("connection", "close"), ("content-length", "1")], [b"a"]),
    (200, [("connection", "keep-alive, x-y"), ("content-length", "1")], [b"a"]),
    (404, [("transfer-encoding", "chunked"), ("content-length", "9")], [b"abc"]),
]
REQUESTS = [
    b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"HEAD / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", REQUESTS)
@pytest.mark.parametrize(("status", "headers", "body"), RESPONSES)
def test_responses_are_written_byte_for_byte_as_h11_writes_them(
    request_bytes: bytes, status: int, headers: list[tuple[str, str]], body: list[bytes]
) -> None:
    """Status line, framing headers, Connection: close, chunk framing, HEAD/204/304 without
    a body and keep-alive afterwards: the same bytes and the same decision as h11."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(request_bytes)
    assert isinstance(conn.next_event(), h11.Request)
    conn.next_event()
    proto = ServerProtocol(MAX)
    proto.receive_data(request_bytes)
    assert proto.next_request() is not None
    assert proto.next_body() == b""
    response = h11.Response(
        status_code=status,
        headers=[(k.encode(), v.encode()) for k, v in headers],
        reason=b"",
        _parsed=True,
    )
    expected = conn.send(response) or b""
    ours = proto.response_head(status, list(headers))
    for piece in body:
        try:
            expected += conn.send(h11.Data(data=piece)) or b""
        except h11.LocalProtocolError:
            with pytest.raises(SendError):
                proto.body(piece)
            return
        ours += proto.body(piece)
    expected += conn.send(h11.EndOfMessage()) or b""
    ours += proto.end()
    assert ours == expected
    assert proto.keep_alive == (conn.our_state is h11.DONE)


_FIELD_BYTES = st.sampled_from(
    [b"a", b"Z", b"-", b"0", b"!", b"~", b":", b" ", b"\t", b"\n", b"\x00", b"\r", b"\x0b",
     b"\x0c", b"\x01", b"\x7f", b"\xe9", b"(", b"@", b"\xff"]
)  # fmt: skip


_FIELD_LINE = st.tuples(
    st.lists(_FIELD_BYTES.filter(lambda b: b != b"\n"), max_size=6),
    st.lists(_FIELD_BYTES.filter(lambda b: b != b"\n"), max_size=10),
).map(lambda nv: b"".join(nv[0]) + b":" + b"".join(nv[1]) + b"\n")


@settings(max_examples=500)
@given(lines=st.lists(_FIELD_LINE, max_size=5).map(b"".join))
def test_the_quick_field_split_agrees_with_the_field_grammar(lines: bytes) -> None:
    """Where the str-method split of a field block answers, it gives the regexes' verdict and
    values (the regex path stays the judge of everything else)."""
    quick = http1._split_fields(lines)
    if quick is None:
        return
    assert http1._FIELDS_OK.fullmatch(lines) is not None
    found = http1._FIELD.findall(lines)
    assert list(quick) == [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in found]
