"""The client side of HTTP/1.1, sans-IO: our request head out, the response head in. Pure.

Why not h11: one h11 client cycle (send a request, parse a head and a body) took about
40-100 µs on our bench machine, and the proxy makes one per request. This writes the head
we already checked (upstream/client.py) and parses the answer's head with the server side's
field rules (server/http1.py), which are h11's. The body is read by upstream/body.py.

A malformed head raises ``h11.RemoteProtocolError``, as the chunked decoder does, so that
upstream/errors.py maps every malformed answer in one place.
"""

from __future__ import annotations

import re

import h11

from trio_pool.server.http1 import ProtocolError, check_framing, comma_values, parse_fields
from trio_pool.server.messages import Headers

_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: (?:[ \t]|[^\x00\s])*)?")
_END_OF_HEAD = re.compile(rb"\n\r?\n")

# How the response body is delimited.
EMPTY, LENGTH, CHUNKED, UNTIL_CLOSE = 0, 1, 2, 3


class OutboundRequest:
    """A request head on the wire and what its framing asks of the body."""

    __slots__ = ("chunked", "close", "head", "method")

    def __init__(self, method: str, head: bytes, chunked: bool, close: bool) -> None:
        self.method = method
        self.head = head
        self.chunked = chunked  # a streamed body goes out in chunks
        self.close = close  # we asked the server to close after the answer


def encode_request(method: str, target: str, headers: list[tuple[str, str]]) -> OutboundRequest:
    """The head, Host first (RFC 9110 §7.2), in one pass over the headers (every request
    builds one); UnicodeEncodeError when one is not latin-1. The caller checks the fields
    (upstream/client.py)."""
    hosts: list[str] = []
    rest: list[str] = []
    chunked = close = False
    for name, value in headers:
        if name == "host":
            hosts.append(f"{name}: {value}\r\n")
            continue
        rest.append(f"{name}: {value}\r\n")
        if name == "transfer-encoding":
            chunked = True
        elif name == "connection" and "close" in comma_values([(name, value)], name):
            close = True
    fields = "".join(hosts) + "".join(rest)
    head = f"{method} {target} HTTP/1.1\r\n{fields}\r\n".encode("latin-1")
    return OutboundRequest(method, head, chunked, close)


class ResponseHead:
    """A parsed response head and how its body is framed."""

    __slots__ = ("framing", "headers", "keep_alive", "length", "status")

    def __init__(
        self, status: int, headers: Headers, framing: int, length: int, keep_alive: bool
    ) -> None:
        self.status = status
        self.headers = headers
        self.framing = framing
        self.length = length
        self.keep_alive = keep_alive


def head_end(buffer: bytes | bytearray, max_head_bytes: int) -> int:
    """Where the head in ``buffer`` ends (after its empty line), or -1 if not yet there."""
    found = _END_OF_HEAD.search(buffer)
    if found is None:
        if buffer and buffer[0] < 0x21:
            raise h11.RemoteProtocolError("illegal status line")
        if len(buffer) > max_head_bytes:
            raise h11.RemoteProtocolError("Receive buffer too long")
        return -1
    if found.end() > max_head_bytes:
        raise h11.RemoteProtocolError("Receive buffer too long")
    return found.end()


def parse_response_head(head: bytes, request: OutboundRequest) -> ResponseHead:
    """A complete head, by h11's rules; ``h11.RemoteProtocolError`` when it breaks them."""
    text = head.replace(b"\r\n", b"\n")
    line_end = text.find(b"\n")
    match = _STATUS_LINE.fullmatch(text, 0, line_end) if line_end > 0 else None
    if match is None:
        raise h11.RemoteProtocolError("illegal status line")
    try:
        headers = parse_fields(text[line_end + 1 : -1])
    except ProtocolError as exc:
        raise h11.RemoteProtocolError(str(exc)) from None
    version, status = match.group(1), int(match.group(2))
    try:
        headers, length, chunked, _hosts = check_framing(headers)
    except ProtocolError as exc:
        raise h11.RemoteProtocolError(str(exc)) from None
    if status < 200 or status in (204, 304) or request.method == "HEAD":
        framing, size = EMPTY, 0
    elif chunked:
        framing, size = CHUNKED, 0
    elif length is not None:
        size = int(length)
        framing = LENGTH if size else EMPTY
    else:
        framing, size = UNTIL_CLOSE, 0
    keep_alive = (
        version >= b"1.1"
        and not request.close
        and framing != UNTIL_CLOSE
        and "close" not in comma_values(headers, "connection")
    )
    return ResponseHead(status, headers, framing, size, keep_alive)
