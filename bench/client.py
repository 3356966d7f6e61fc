"""A deliberately cheap HTTP/1.1 client on raw trio sockets (keep-alive, chunked bodies).

The load generator shares two cores with the simulator and the proxy, so every microsecond it
spends parsing is taken from them. This client does only what the benchmark needs: send a
pre-encoded request, read the status line, the framing headers and the body, and note when
the first body byte arrived (for time-to-first-byte).
"""

from __future__ import annotations

import json
import time
from typing import Any

import attrs
import trio

READ_SIZE = 256 * 1024


class ConnectionLost(Exception):
    """The server closed the connection before the response was complete."""


@attrs.frozen
class Reply:
    status: int
    body: bytes
    ttfb_s: float  # request sent -> first body byte received
    total_s: float


def encode_request(
    method: str, path: str, host: str, headers: list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request on the wire, built once and sent many times."""
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body or method == "POST":
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def encode_json_request(
    path: str, host: str, headers: list[tuple[str, str]], body: dict[str, Any]
) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return encode_request(
        "POST", path, host, [("content-type", "application/json"), *headers], data
    )


class Connection:
    """One keep-alive connection; reconnects lazily after the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._stream: trio.SocketStream | None = None
        self._buf = bytearray()
        self._filled_at = 0.0

    async def _fill(self) -> None:
        assert self._stream is not None
        data = await self._stream.receive_some(READ_SIZE)
        self._filled_at = time.perf_counter()
        if not data:
            raise ConnectionLost("server closed the connection")
        self._buf += data

    async def aclose(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.aclose()

    async def request(self, raw: bytes) -> Reply:
        if self._stream is None:
            self._stream = await trio.open_tcp_stream(self.host, self.port)
            self._buf.clear()
        try:
            return await self._exchange(raw)
        except BaseException:
            # A half-read response leaves the connection unusable.
            with trio.CancelScope(shield=True):
                await self.aclose()
            raise

    async def _exchange(self, raw: bytes) -> Reply:
        assert self._stream is not None
        buf = self._buf
        started = time.perf_counter()
        await self._stream.send_all(raw)
        while (end := buf.find(b"\r\n\r\n")) < 0:
            await self._fill()
        lines = bytes(buf[:end]).split(b"\r\n")
        del buf[: end + 4]
        status = int(lines[0].split(b" ", 2)[1])
        length: int | None = None
        chunked = close = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if not buf and (chunked or length):
            await self._fill()
        # The receive that brought the first body byte (or the head, for an empty body).
        first = self._filled_at
        if chunked:
            body = await self._read_chunked()
        elif length is not None:
            while len(buf) < length:
                await self._fill()
            body = bytes(buf[:length])
            del buf[:length]
        else:
            raise ConnectionLost("response without content-length or chunked framing")
        done = time.perf_counter()
        if close:
            await self.aclose()
        return Reply(status, body, max(0.0, first - started), done - started)

    async def _read_chunked(self) -> bytes:
        buf = self._buf
        parts: list[bytes] = []
        while True:
            while (eol := buf.find(b"\r\n")) < 0:
                await self._fill()
            size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
            need = eol + 2 + size + 2
            while len(buf) < need:
                await self._fill()
            if size == 0:
                # The benchmark's servers send no trailers.
                del buf[:need]
                return b"".join(parts)
            parts.append(bytes(buf[eol + 2 : eol + 2 + size]))
            del buf[:need]
