"""upstream/http1.py held to h11's client verdicts: the same response heads accepted and
refused, the same fields, body framing and keep-alive; the same request bytes written."""

from __future__ import annotations

from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trio_pool.errors import UpstreamProtocolError
from trio_pool.upstream.client import _sendable, build_request
from trio_pool.upstream.connect import Origin
from trio_pool.upstream.http1 import (
    CHUNKED,
    EMPTY,
    LENGTH,
    UNTIL_CLOSE,
    encode_request,
    head_end,
    parse_response_head,
)

MAX = 64 * 1024
FRAMING = {EMPTY: "empty", LENGTH: "length", CHUNKED: "chunked", UNTIL_CLOSE: "until close"}

NAMES = st.sampled_from(
    [b"content-length", b"Content-Length", b"transfer-encoding", b"connection", b"x-a", b"date"]
)
VALUES = st.sampled_from(
    [b"x", b"0", b"12", b" 12 ", b"12, 12", b"1,2", b"-1", b"chunked", b"CHUNKED", b"gzip",
     b"close", b"keep-alive", b"upgrade, Close", b"", b"a  b", b"5\xa0", b"\x00", b"a\rb"]
)  # fmt: skip
STATUS_LINES = st.sampled_from(
    [b"HTTP/1.1 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.0 200 OK",
     b"HTTP/1.1 204 No Content", b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 429 Too Many",
     b"HTTP/1.1 20 OK", b"HTTP/2 200", b"http/1.1 200 OK", b"HTTP/1.1 200 \x01", b""]
)  # fmt: skip


@st.composite
def heads(draw: st.DrawFn) -> bytes:
    end = draw(st.sampled_from([b"\r\n", b"\n"]))
    lines = [draw(STATUS_LINES)]
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 12)) == 0:
            lines.append(draw(st.sampled_from([b" folded", b"no colon"])))
        else:
            lines.append(draw(NAMES) + draw(st.sampled_from([b": ", b":"])) + draw(VALUES))
    return end.join(lines) + end + end


def h11_verdict(data: bytes, method: bytes, close: bool) -> Any:
    conn = h11.Connection(h11.CLIENT)
    headers = [(b"host", b"x")] + ([(b"connection", b"close")] if close else [])
    conn.send(h11.Request(method=method, target=b"/", headers=headers))
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    try:
        event = conn.next_event()
    except h11.RemoteProtocolError:
        return "error"
    assert isinstance(event, h11.Response | h11.InformationalResponse)
    fields = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
    framing = h11_framing(method, event)
    keep_alive = conn._cstate.keep_alive and framing != "until close"
    return event.status_code, fields, framing, keep_alive


def h11_framing(method: bytes, event: h11.Response | h11.InformationalResponse) -> str:
    if not isinstance(event, h11.Response):
        return "empty"
    kind, args = h11._connection._body_framing(method, event)
    if kind == "content-length":
        return "length" if args and args[0] else "empty"
    return {"chunked": "chunked", "http/1.0": "until close"}[kind]


def our_verdict(data: bytes, method: str, close: bool) -> Any:
    headers = [("host", "x")] + ([("connection", "close")] if close else [])
    request = encode_request(method, "/", headers)
    try:
        end = head_end(data, MAX)
        assert end == len(data)
        head = parse_response_head(data[:end], request)
    except h11.RemoteProtocolError:
        return "error"
    fields = tuple((k, v) for k, v in head.headers)
    return head.status, fields, FRAMING[head.framing], head.keep_alive


@settings(max_examples=600, deadline=None)
@given(data=heads(), method=st.sampled_from(["GET", "HEAD", "POST"]), close=st.booleans())
def test_response_heads_are_read_exactly_as_h11_reads_them(
    data: bytes, method: str, close: bool
) -> None:
    """Accepted by both with the same status, fields, body framing and keep-alive, or
    refused by both."""
    assert our_verdict(data, method, close) == h11_verdict(data, method.encode(), close)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_get_h11_protocol_errors_only(data: bytes) -> None:
    """Any bytes: a head, a request for more, or h11.RemoteProtocolError (which
    upstream/errors.py maps); nothing else escapes."""
    request = encode_request("GET", "/", [("host", "x")])
    try:
        end = head_end(data, MAX)
        if end >= 0:
            parse_response_head(data[:end], request)
    except h11.RemoteProtocolError:
        pass


@pytest.mark.parametrize(
    "headers",
    [
        [("host", "api.example.test"), ("content-length", "2"), ("x-a", "b c")],
        [("x-a", "1"), ("host", "h"), ("transfer-encoding", "chunked")],
    ],
)
def test_request_heads_are_the_bytes_h11_writes(headers: list[tuple[str, str]]) -> None:
    """Request line, Host first, every field as given: h11's bytes."""
    conn = h11.Connection(h11.CLIENT)
    encoded = [(k.encode(), v.encode()) for k, v in headers]
    expected = conn.send(h11.Request(method=b"POST", target=b"/v1/x?y=1", headers=encoded))
    assert encode_request("POST", "/v1/x?y=1", headers).head == expected


_NAME_CHARS = st.sampled_from(list("abcXYZ019-!#$%&'*+.^_`|~ :@\t"))
_VALUE_CHARS = st.sampled_from(list("ab Z9 \t\x00\r\n\x0b\x0c\x7f:\u00e9\u0101"))


@settings(max_examples=400, deadline=None)
@given(
    headers=st.lists(
        st.tuples(
            st.text(_NAME_CHARS, min_size=0, max_size=6),
            st.text(_VALUE_CHARS, min_size=0, max_size=8),
        ),
        max_size=4,
    )
)
def test_a_request_head_is_built_exactly_when_every_header_is_sendable(
    headers: list[tuple[str, str]],
) -> None:
    """build_request checks the encoded head with one regex; it refuses exactly the heads
    with a header that the per-header rule (h11's) refuses."""
    origin = Origin.of_url("http://api.example.test")
    sendable = all(_sendable(k, v) for k, v in headers)
    try:
        request = build_request("POST", origin, "/v1/x", headers, b"{}", "api.example.test")
    except UpstreamProtocolError:
        assert not sendable
        return
    assert sendable
    assert request.head.startswith(b"POST /v1/x HTTP/1.1\r\nhost: ")
