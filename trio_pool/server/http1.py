"""The server side of HTTP/1.1, sans-IO: request bytes in, heads and body pieces out; response
heads and body pieces in, bytes out. Pure: no trio, no sockets.

Why not h11 here: h11 is correct and general, but one request cycle (parse a head and a small
body, send a head, a body and the end) walks its event and state machinery for about 100 µs,
a sixth of the proxy's CPU per small request. This does the same work with two regexes over
the whole head and a few ``bytes.find`` calls. The rules are h11 0.16's, which follow RFC 9112,
and tests/server/test_http1.py holds this module to h11's verdicts on generated heads:

- a head is lines ending in CRLF or a bare LF, up to an empty line, at most ``max_head_bytes``
  (431 past it); the request line is ``token SP visible-chars SP HTTP/d.d``;
- a field is ``token ":" OWS value OWS``, the value visible or obs-text characters with inner
  spaces and tabs; obsolete line folding is joined with one space;
- HTTP/1.1 needs exactly one Host; Content-Length is digits (repeats must agree);
  Transfer-Encoding may only be "chunked" (501 otherwise), once;
- keep-alive unless HTTP/1.0 or ``Connection: close`` on either side;
- a response without Content-Length is chunked to an HTTP/1.1 client and ends with the
  connection for an HTTP/1.0 one; HEAD, 204 and 304 answers carry no body.

Chunked request bodies are decoded by server/chunked.py (the upstream client's decoder too),
which is as strict as h11 where it matters.
"""

from __future__ import annotations

import re

import h11

from trio_pool.server.chunked import ChunkedDecoder
from trio_pool.server.messages import Headers, RequestHead

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_VALUE = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
# The field lines of a head, each ending in "\n" (CRs already dropped): one fullmatch checks
# them all, one findall takes them apart.
_FIELDS_OK = re.compile(rb"(?:" + _TOKEN + rb":[ \t]*" + _VALUE + rb"[ \t]*\n)*")
_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb")[ \t]*\n")
_TOKEN_TEXT = re.compile(_TOKEN.decode("ascii"))
_END_OF_HEAD = re.compile(rb"\n\r?\n")
_DIGITS = re.compile(rb"[0-9]{1,20}")
# Field values hold no other whitespace than these (str.strip() would also take \xa0).
_OWS = " \t"
_FOLDS = re.compile(rb"\n[ \t]+")


class ProtocolError(Exception):
    """The peer broke HTTP/1.1; ``status_hint`` is the status to answer a client with."""

    def __init__(self, message: str, status_hint: int = 400) -> None:
        super().__init__(message)
        self.status_hint = status_hint


class SendError(RuntimeError):
    """We tried to send something HTTP/1.1 does not allow here (a bug on our side)."""


def comma_values(headers: Headers | list[tuple[str, str]], name: str) -> list[str]:
    """h11's get_comma_header: every comma-separated token of ``name``, lower-case."""
    out = []
    for key, value in headers:
        if key == name:
            out += [t.strip(_OWS).lower() for t in value.split(",") if t.strip(_OWS)]
    return out


def parse_fields(lines: bytes) -> Headers:
    """The field lines (each ending in "\\n", CRs dropped) as (lower-case name, value)
    pairs of latin-1 text."""
    if lines[:1] in (b" ", b"\t"):
        raise ProtocolError("continuation line at start of headers")
    if b"\n " in lines or b"\n\t" in lines:
        # Obsolete line folding (RFC 9112 §5.2): joined with one space, as h11 does.
        lines = _FOLDS.sub(b" ", lines)
    fields = _split_fields(lines)
    if fields is not None:
        return fields
    # Something the quick split does not judge: the grammar decides.
    if _FIELDS_OK.fullmatch(lines) is None:
        raise ProtocolError("illegal header line")
    return tuple(
        (k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in _FIELD.findall(lines)
    )


def _split_fields(lines: bytes) -> Headers | None:
    """The fields of a block that holds no byte a value may not hold (NUL, CR, VT, FF) and
    whose names are plain tokens, split with str methods; None for anything else.

    Same verdict and values as _FIELDS_OK and _FIELD: once those bytes are excluded, every
    ``name:value`` line with a token name matches them, and the captured value is the line
    after the colon without its outer spaces and tabs. The two regexes walked the head
    byte by byte twice, about 10 µs of the 20 µs a response head cost.
    """
    if b"\x00" in lines or b"\r" in lines or b"\x0b" in lines or b"\x0c" in lines:
        return None
    out = []
    for line in lines.decode("latin-1").split("\n")[:-1]:
        name, colon, value = line.partition(":")
        # Most names are letters, digits and dashes: str methods answer those without a regex.
        plain = name.isascii() and name.replace("-", "").isalnum()
        if not colon or not (plain or _TOKEN_TEXT.fullmatch(name)):
            return None
        out.append((name.lower(), value.strip(_OWS)))
    return tuple(out)


def check_framing(headers: Headers) -> tuple[Headers, str | None, bool, int]:
    """h11's checks of the framing fields: (the fields with one Content-Length, normalized;
    its value; chunked; how many Host fields). ProtocolError when they disagree."""
    length: str | None = None
    chunked = False
    hosts = 0
    normalize = False
    for name, value in headers:
        if name == "host":
            hosts += 1
        elif name == "content-length":
            values = {v.strip(_OWS) for v in value.split(",")}
            found = values.pop()
            if values or (length is not None and length != found):
                raise ProtocolError("conflicting Content-Length headers")
            if _DIGITS.fullmatch(found.encode("latin-1")) is None:
                raise ProtocolError("bad Content-Length")
            normalize = normalize or length is not None or found != value
            length = found
        elif name == "transfer-encoding":
            if chunked:
                raise ProtocolError("multiple Transfer-Encoding headers", 501)
            if value.lower() != "chunked":
                raise ProtocolError("Only Transfer-Encoding: chunked is supported", 501)
            normalize = normalize or value != "chunked"
            chunked = True
    if normalize:
        # As h11 keeps them: the first Content-Length only, with its one value; "chunked".
        kept: list[tuple[str, str]] = []
        for name, value in headers:
            if name == "content-length":
                if length is not None and not any(k == name for k, _ in kept):
                    kept.append((name, length))
            elif name == "transfer-encoding":
                kept.append((name, "chunked"))
            else:
                kept.append((name, value))
        headers = tuple(kept)
    return headers, length, chunked, hosts


def parse_head(head: bytes) -> tuple[RequestHead, int | None, bool, bool]:
    """A complete head (through its empty line) as (request, body length or None for
    chunked, keep-alive, expects 100-continue). ProtocolError when it breaks the rules."""
    text = head.replace(b"\r\n", b"\n")
    line_end = text.find(b"\n")
    if line_end == 0:
        raise ProtocolError("no request line received")
    match = _REQUEST_LINE.fullmatch(text, 0, line_end)
    if match is None:
        raise ProtocolError("illegal request line")
    method, target, version = match.groups()
    # The field lines, without the empty line that ends the head.
    headers = parse_fields(text[line_end + 1 : -1])
    headers, seen_length, chunked, hosts = check_framing(headers)
    http_version = version.decode("ascii")
    if hosts > 1:
        raise ProtocolError("Found multiple Host: headers")
    if hosts == 0 and http_version == "1.1":
        raise ProtocolError("Missing mandatory Host: header")
    length: int | None = None if chunked else int(seen_length or 0)
    keep_alive = http_version >= "1.1" and "close" not in comma_values(headers, "connection")
    expects = http_version >= "1.1" and "100-continue" in comma_values(headers, "expect")
    request = RequestHead(method.decode("ascii"), target.decode("latin-1"), headers, http_version)
    return request, length, keep_alive, expects


# What the connection is waiting for from the client, and where our answer is.
_HEAD, _BODY, _DONE = 1, 2, 3  # theirs
_IDLE, _SENDING, _SENT, _BROKEN = 1, 2, 3, 4  # ours


class ServerProtocol:
    """One connection's HTTP/1.1 state, one request cycle at a time."""

    def __init__(self, max_head_bytes: int) -> None:
        self.max_head_bytes = max_head_bytes
        self.buffer = bytearray()  # received and not yet handed out (pipelined bytes too)
        self.closed = False  # the client ended its side
        self.request: RequestHead | None = None
        self.keep_alive = True
        self.waiting_for_100_continue = False
        # Where the search for the end of the head resumes: the bytes before it hold none.
        # Searching the whole buffer again at every read made a head trickled a byte at a
        # time cost quadratic time (0.9 s of CPU for 60 KB); h11 resumes the same way.
        self._searched = 0
        self._theirs = _HEAD
        self._ours = _IDLE
        self._remaining = 0  # request body bytes still to come (Content-Length)
        self._decoder: ChunkedDecoder | None = None
        self._head_method = False
        self._framing = 0  # of our body: _LENGTH, _CHUNKED or _UNTIL_CLOSE
        self._to_send = 0  # bytes left of a declared Content-Length

    # -- receiving -------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Bytes from the client; b"" when it closed its side."""
        if data:
            self.buffer += data
        else:
            self.closed = True

    def next_request(self) -> RequestHead | None:
        """The next request head, or None when more bytes are needed (or the client closed
        between requests: see ``closed``)."""
        buffer = self.buffer
        found = _END_OF_HEAD.search(buffer, self._searched)
        if found is None:
            # The end ("\n\r\n") may have begun in the last two bytes.
            self._searched = max(0, len(buffer) - 2)
            if buffer and buffer[0] < 0x21:
                raise ProtocolError("illegal request line")
            if len(buffer) > self.max_head_bytes:
                raise ProtocolError("Receive buffer too long", 431)
            if self.closed and buffer:
                raise ProtocolError("peer unexpectedly closed the connection mid-head")
            return None
        end = found.end()
        if end > self.max_head_bytes:
            raise ProtocolError(f"request head is larger than {self.max_head_bytes} bytes", 431)
        head = bytes(buffer[:end])
        del buffer[:end]
        self._searched = 0
        request, length, self.keep_alive, self.waiting_for_100_continue = parse_head(head)
        self.request = request
        self._head_method = request.method == "HEAD"
        if length is None:
            self._decoder = ChunkedDecoder()
            self._theirs = _BODY
        else:
            self._remaining = length
            self._theirs = _BODY if length else _DONE
        self._ours = _IDLE
        return request

    @property
    def body_done(self) -> bool:
        return self._theirs == _DONE

    def next_body(self) -> bytes | None:
        """Request body bytes from the buffer; b"" at its end; None when more are needed."""
        if self._theirs == _DONE:
            return b""
        buffer = self.buffer
        if self._decoder is not None:
            if not buffer:
                return self._need_more()
            data = bytes(buffer)
            buffer.clear()
            try:
                block = self._decoder.feed(data)
            except h11.RemoteProtocolError as exc:
                raise ProtocolError(str(exc)) from exc
            self.waiting_for_100_continue = False
            if self._decoder.done:
                # What follows the body is the next request's.
                buffer += self._decoder.trailing
                self._decoder = None
                self._theirs = _DONE
                return block
            return block if block else self._need_more()
        if not buffer:
            return self._need_more()
        take = min(self._remaining, len(buffer))
        block = bytes(buffer[:take])
        del buffer[:take]
        self._remaining -= take
        if not self._remaining:
            self._theirs = _DONE
        self.waiting_for_100_continue = False
        return block

    def _need_more(self) -> bytes | None:
        """None (read more), unless the client closed its side mid-body."""
        if self.closed:
            raise ProtocolError("peer closed connection without sending complete message body")
        return None

    # -- sending -------------------------------------------------------------------------

    @property
    def may_respond(self) -> bool:
        """No byte of a response to the current request has gone out yet."""
        return self._ours == _IDLE

    @property
    def response_done(self) -> bool:
        return self._ours == _SENT

    def send_failed(self) -> None:
        """A write failed midway: the connection cannot carry anything more."""
        self._ours = _BROKEN

    def informational(self, status: int) -> bytes:
        self.waiting_for_100_continue = False
        return b"HTTP/1.1 %d \r\n\r\n" % status

    def response_head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        """The head of the response, framing and ``Connection: close`` settled as h11 does."""
        if self._ours != _IDLE:
            raise SendError("a response head was already sent for this request")
        self.waiting_for_100_continue = False
        request = self.request
        old_client = request is None or request.http_version < "1.1"
        length: str | None = None
        chunked = False
        for name, value in headers:
            if name == "content-length":
                length = value
            elif name == "transfer-encoding":
                chunked = True
        if status in (204, 304) or (
            request is not None and request.method == "CONNECT" and 200 <= status < 300
        ):
            framing, to_send = _LENGTH, 0
        elif not chunked and length is not None:
            if not length.isdigit():
                raise SendError("bad Content-Length")
            framing, to_send = _LENGTH, int(length)
        else:
            # No length: chunked to an HTTP/1.1 client, until the close to an HTTP/1.0 one.
            headers = [h for h in headers if h[0] not in ("content-length", "transfer-encoding")]
            if old_client:
                framing, to_send = _UNTIL_CLOSE, 0
            else:
                framing, to_send = _CHUNKED, 0
                headers.append(("Transfer-Encoding", "chunked"))
        if self._head_method:
            framing, to_send = _LENGTH, 0
        need_close = framing == _UNTIL_CLOSE
        if not self.keep_alive or need_close:
            # As h11 writes it: the client's side already ends the connection.
            tokens = {t for t in comma_values(headers, "connection") if t != "keep-alive"}
            tokens.add("close")
            headers = [h for h in headers if h[0] != "connection"]
            headers += [("Connection", token) for token in sorted(tokens)]
            self.keep_alive = False
        elif "close" in comma_values(headers, "connection"):
            self.keep_alive = False
        self._framing, self._to_send = framing, to_send
        self._ours = _SENDING
        lines = "".join([f"{k}: {v}\r\n" for k, v in headers])
        return b"HTTP/1.1 %d \r\n%s\r\n" % (status, lines.encode("latin-1"))

    def body(self, data: bytes) -> bytes:
        """``data`` framed as part of the response body."""
        if self._ours != _SENDING:
            raise SendError("no response body is being sent")
        if not data:
            return b""
        framing = self._framing
        if framing == _CHUNKED:
            return b"%x\r\n%s\r\n" % (len(data), data)
        if framing == _LENGTH:
            if len(data) > self._to_send:
                raise SendError("Too much data for declared Content-Length")
            self._to_send -= len(data)
        return data

    def end(self) -> bytes:
        """The end of the response body."""
        if self._ours != _SENDING:
            raise SendError("no response is being sent")
        if self._framing == _LENGTH and self._to_send:
            raise SendError("Too little data for declared Content-Length")
        self._ours = _SENT
        if self._framing == _UNTIL_CLOSE:
            self.keep_alive = False
        return b"0\r\n\r\n" if self._framing == _CHUNKED else b""

    def start_next_cycle(self) -> bool:
        """Ready for the next request (False: the connection must close instead)."""
        if not (self.keep_alive and self._ours == _SENT and self._theirs == _DONE):
            return False
        self.request = None
        self._theirs = _HEAD
        self._ours = _IDLE
        return True


_LENGTH, _CHUNKED, _UNTIL_CLOSE = 1, 2, 3
