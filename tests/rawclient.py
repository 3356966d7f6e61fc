"""Raw loopback clients that misbehave on purpose: resets (RST), half requests, hang-ups.

A reset is ``SO_LINGER`` with a zero timeout followed by close: the kernel sends RST instead
of FIN. Closing a socket that still has unread data does the same without SO_LINGER.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct

import trio

from tests.http_client import HttpClient

CLAUDE_HEADERS = "anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"


async def connect(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def reset(stream: trio.SocketStream) -> None:
    """Close with an RST."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


def claude_request(*, stream: bool = True, max_tokens: int = 8) -> bytes:
    body = json.dumps(
        {"model": "m", "max_tokens": max_tokens, "stream": stream, "messages": []}
    ).encode()
    head = f"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n{CLAUDE_HEADERS}"
    return f"{head}content-length: {len(body)}\r\n\r\n".encode() + body


def websocket_handshake(path: str = "/v1/responses") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n"
        "openai-beta: responses_websockets=2026-02-06\r\n\r\n"
    ).encode()


async def read_until(stream: trio.SocketStream, needle: bytes) -> bytes:
    """Bytes up to and including ``needle`` (or what came before EOF)."""
    data = b""
    while needle not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        data += chunk
    return data


async def status_of(base: str, path: str = "/healthz") -> int:
    async with HttpClient() as client:
        response = await client.request("GET", base + path)
    return response.status
