"""The fast fake upstream: ``python -m bench.upstream --port P --pool-dir D``.

It stands in for api.anthropic.com in the speed comparison (and for the ChatGPT backend's
Codex Responses API in the translated-stream workload), so it must cost far less than
anything measured through it, and it must frame streams as the real services do: every SSE
event is its own HTTP chunk, written to the socket on its own (one ``write`` per event; the
real services flush each event as the model produces it). A simulator that joins the events
into one write hides the per-chunk cost of a proxy, which is how an earlier ``make bench``
missed a relay 8x slower than it should be.

It is plain asyncio with hand-written parsing (not trio and h11, which the proxy under test
uses): the request is parsed once, every answer is pre-encoded per reply shape, and a
request costs a dict lookup and a few writes. It still refuses what the real API refuses
for these requests: no credential, an unknown OAuth token, or an OAuth token without the
``oauth-2025-04-20`` beta get Anthropic's 401; on the Codex path an unknown token gets 401,
a ``chatgpt-account-id`` that is not the token's 403, and a body without ``"stream":true``
or ``"store":false`` the backend's 400; other paths get 404.

Endpoints: ``POST /v1/messages`` (any query; JSON, or SSE when the body asks to stream),
``POST /backend-api/codex/responses`` (SSE only, as the ChatGPT backend),
``GET /api/oauth/usage`` (the proxy's usage poll), ``POST /bench/config`` (a JSON object of
``Shape`` fields: the reply shape of the following requests) and ``GET /bench/stats``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

import attrs

from bench import codex_shapes, sse_shapes
from bench.sse_shapes import Shape

MAX_HEAD = 64 * 1024
STREAM_FLAGS = (b'"stream":true', b'"stream": true')
STORE_FLAGS = (b'"store":false', b'"store": false')
CODEX_PATH = b"/backend-api/codex/responses"
OAUTH_BETA = b"oauth-2025-04-20"
API_KEY = "sk-ant-api03-bench-key-for-the-fake-upstream"


class Stats:
    """What the upstream saw: requests answered and connections accepted."""

    def __init__(self) -> None:
        self.requests = 0
        self.connections = 0
        self.refused = 0


class Upstream:
    """Shared state: valid credentials, the current reply shape, and the counters."""

    def __init__(self, tokens: set[str], codex_accounts: dict[str, str] | None = None) -> None:
        self.tokens = tokens
        self.codex_accounts = codex_accounts or {}  # access token -> ChatGPT account id
        self.stats = Stats()
        self.replies = sse_shapes.Replies(Shape())
        self.codex = codex_shapes.CodexReplies(Shape())
        self.open: set[Connection] = set()

    def authorized(self, head: bytes) -> bytes | None:
        """None when the request may proceed, else the whole 401 response."""
        lowered = head.lower()
        if header(head, b"x-api-key", lowered) == API_KEY.encode():
            return None
        value = header(head, b"authorization", lowered)
        if value is None or not value.lower().startswith(b"bearer "):
            return sse_shapes.error_response(401, "x-api-key header is required")
        if value[7:].strip().decode("latin-1") not in self.tokens:
            return sse_shapes.error_response(401, "Invalid bearer token")
        betas = header(lowered, b"anthropic-beta") or b""
        if OAUTH_BETA not in {beta.strip() for beta in betas.split(b",")}:
            return sse_shapes.error_response(
                401, "OAuth authentication is currently not supported."
            )
        return None

    def codex_refusal(self, head: bytes, body: bytes) -> bytes | None:
        """None when a Codex Responses request may proceed, else the whole refusal."""
        lowered = head.lower()
        value = header(head, b"authorization", lowered) or b""
        token = value[7:].strip().decode("latin-1") if value.lower().startswith(b"bearer ") else ""
        account = self.codex_accounts.get(token)
        if account is None:
            return codex_shapes.codex_auth_error(
                401,
                "Could not parse your authentication token. Please try signing in again.",
                "invalid_token",
            )
        if header(head, b"chatgpt-account-id", lowered) != account.encode():
            return codex_shapes.codex_auth_error(
                403,
                "The ChatGPT-Account-ID header does not match the account of this token.",
                "account_mismatch",
            )
        if not any(flag in body for flag in STREAM_FLAGS):
            return codex_shapes.codex_error(400, "Stream must be set to true")
        if not any(flag in body for flag in STORE_FLAGS):
            return codex_shapes.codex_error(400, "Store must be set to false")
        return None


def header(head: bytes, name: bytes, lowered: bytes | None = None) -> bytes | None:
    """The value of the first ``name`` header line of ``head`` (``name`` in lower case)."""
    lowered = head.lower() if lowered is None else lowered
    start = lowered.find(b"\r\n" + name + b":")
    if start < 0:
        return None
    start += len(name) + 3
    end = head.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class Connection(asyncio.Protocol):
    """One client connection: parse requests as their bytes arrive, answer each in order."""

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.upstream.stats.connections += 1
        self.upstream.open.add(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self.transport is not None and self._one_request():
            pass

    def _one_request(self) -> bool:
        """Answer the first complete request in the buffer; False when it is not complete."""
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            if len(buf) > MAX_HEAD:
                self._refuse(431, "request head too large")
            return False
        head = bytes(buf[:end])
        lowered = head.lower()
        if b"\r\ntransfer-encoding:" in lowered:
            # Every client of the benchmark sends Content-Length; chunked bodies are not needed.
            self._refuse(411, "chunked request bodies are not supported here")
            return False
        try:
            length = int(header(lowered, b"content-length", lowered) or 0)
        except ValueError:
            self._refuse(400, "bad content-length")
            return False
        if len(buf) < end + 4 + length:
            return False
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        self._answer(head, body, close=header(lowered, b"connection", lowered) == b"close")
        return True

    def _answer(self, head: bytes, body: bytes, *, close: bool) -> None:
        transport = self.transport
        assert transport is not None
        method, _, rest = head.partition(b" ")
        target = rest.partition(b" ")[0]
        path = target.partition(b"?")[0]
        up = self.upstream
        if path == b"/v1/messages" and method == b"POST":
            refusal = up.authorized(head)
            if refusal is not None:
                up.stats.refused += 1
                transport.write(refusal)
            elif STREAM_FLAGS[0] in body or STREAM_FLAGS[1] in body:
                up.stats.requests += 1
                # One write per event: the framing the real services put on the wire.
                for piece in up.replies.stream:
                    if transport.is_closing():
                        break  # the client went away mid-stream (a load run ending)
                    transport.write(piece)
            else:
                up.stats.requests += 1
                transport.write(up.replies.small)
        elif path == CODEX_PATH and method == b"POST":
            refusal = up.codex_refusal(head, body)
            if refusal is not None:
                up.stats.refused += 1
                transport.write(refusal)
            else:
                up.stats.requests += 1
                for piece in up.codex.stream:  # one write per event, as above
                    if transport.is_closing():
                        break
                    transport.write(piece)
        elif path == b"/api/oauth/usage" and method == b"GET":
            transport.write(up.authorized(head) or up.replies.usage)
        elif path == b"/bench/config" and method == b"POST":
            transport.write(self._configure(body))
        elif path == b"/bench/stats":
            stats = dict(vars(up.stats), shape=attrs.asdict(up.replies.shape))
            transport.write(sse_shapes.json_response(200, stats))
        else:
            transport.write(sse_shapes.error_response(404, "Not found", "not_found_error"))
        if close:
            transport.close()
            self.transport = None

    def _configure(self, body: bytes) -> bytes:
        try:
            fields: dict[str, Any] = json.loads(body or b"{}")
            shape = Shape(**fields)
            self.upstream.replies = sse_shapes.Replies(shape)
            self.upstream.codex = codex_shapes.CodexReplies(shape)
        except (TypeError, ValueError) as exc:
            return sse_shapes.json_response(400, {"error": str(exc)})
        return sse_shapes.json_response(200, attrs.asdict(self.upstream.replies.shape))

    def _refuse(self, status: int, message: str) -> None:
        assert self.transport is not None
        self.transport.write(sse_shapes.error_response(status, message, close=True))
        self.transport.close()
        self.transport = None

    def connection_lost(self, exc: Exception | None) -> None:
        self.upstream.open.discard(self)
        self.transport = None


def claude_tokens(pool_dir: Path | None) -> set[str]:
    """The OAuth access tokens of the Claude accounts in the pool (the ones it accepts)."""
    if pool_dir is None:
        return set()
    files = sorted((pool_dir / "claude").glob("*.json"))
    return {json.loads(f.read_text())["claudeAiOauth"]["accessToken"] for f in files}


def codex_accounts(pool_dir: Path | None) -> dict[str, str]:
    """The Codex accounts of the pool: access token -> ChatGPT account id."""
    if pool_dir is None:
        return {}
    files = sorted((pool_dir / "codex").glob("*.json"))
    tokens = [json.loads(f.read_text())["tokens"] for f in files]
    return {t["access_token"]: t["account_id"] for t in tokens}


async def serve(port: int, tokens: set[str], codex: dict[str, str] | None = None) -> None:
    loop = asyncio.get_running_loop()
    upstream = Upstream(tokens, codex)
    server = await loop.create_server(
        lambda: Connection(upstream), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    # Keep-alive clients (a proxy's pool) would hold the process open: drop them.
    for conn in list(upstream.open):
        if conn.transport is not None:
            conn.transport.abort()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.upstream", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-dir", type=Path, help="accept the Claude tokens of this pool")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, claude_tokens(args.pool_dir), codex_accounts(args.pool_dir)))


if __name__ == "__main__":
    main()
