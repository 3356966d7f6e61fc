"""The requests the audit tables are written in: a Claude request's parts, a request that
must never reach upstream, and small builders, so that each row reads as the bytes it sends."""

from __future__ import annotations

from typing import Any

import attrs

from tests.server.audit_wire import Attack
from trio_pool.config import Config

HOST = b"host: 127.0.0.1\r\n"
CLAUDE = b"anthropic-version: 2023-06-01\r\ncontent-type: application/json\r\n"
MESSAGE = b'{"model":"claude-opus-5-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
LENGTH = b"content-length: %d\r\n" % len(MESSAGE)
CHUNKED = b"transfer-encoding: chunked\r\n"
# A Claude request's head without its framing fields or the empty line.
POST = b"POST /v1/messages HTTP/1.1\r\n" + HOST + CLAUDE
# A complete request that must never reach upstream when it rides behind a refused one.
SMUGGLED = b"POST /v1/messages?smuggled=1 HTTP/1.1\r\n" + HOST + CLAUDE + LENGTH + b"\r\n" + MESSAGE
FORWARDED = ("/v1/messages",)


def chunked(size_line: bytes = b"%x" % len(MESSAGE), trailer: bytes = b"") -> bytes:
    """MESSAGE as one chunk, its size line as given, then the last chunk and trailers."""
    return size_line + b"\r\n" + MESSAGE + b"\r\n0\r\n" + trailer + b"\r\n"


def get(fields: bytes = HOST, line: bytes = b"GET /healthz HTTP/1.1") -> bytes:
    return line + b"\r\n" + fields + b"\r\n"


def row(name: str, audit: str, data: bytes | tuple[Any, ...], *statuses: int, **kw: Any) -> Attack:
    script = (data,) if isinstance(data, bytes) else data
    return Attack(name, audit, script, statuses, **kw)


def fast_timeouts(config: Config) -> Config:
    """Head and keep-alive timeouts short enough for slow clients to be cut within the suite."""
    return attrs.evolve(config, head_timeout_s=1.0, keepalive_idle_s=2.0)
