"""Raw HTTP/1.1 over a real loopback socket: requests exactly as written (no client
normalises the path, the Host header or the body)."""

from __future__ import annotations

import json
from typing import Any

import trio


def host_port(base: str) -> tuple[str, int]:
    host, _, port = base.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


async def raw_request(base: str, data: bytes, *, timeout_s: float = 10) -> tuple[int, bytes]:
    """Send ``data`` and read the answer until the proxy closes; (status, body)."""
    host, port = host_port(base)
    with trio.fail_after(timeout_s):
        stream = await trio.open_tcp_stream(host, port)
        async with stream:
            await stream.send_all(data)
            received = b""
            while True:
                try:
                    chunk = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not chunk:
                    break
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else 0
    return status, body


def request_bytes(
    method: str,
    target: str,
    *,
    host: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> bytes:
    """One request that asks the server to close afterwards."""
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}", "connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def send(
    base: str,
    method: str,
    target: str,
    *,
    host: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
) -> tuple[int, Any]:
    """(status, parsed JSON body or the raw bytes)."""
    if host is None:
        host = base.removeprefix("http://")
    status, raw = await raw_request(
        base, request_bytes(method, target, host=host, headers=headers, body=body)
    )
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw
