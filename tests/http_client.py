"""The tests' HTTP client: the project's own (trio_pool.upstream), with whole answers.

``Reply`` keeps header names and values as bytes pairs (names lower-case), so a test can
write ``dict(reply.headers)[b"retry-after"]``.
"""

from __future__ import annotations

from types import TracebackType

import attrs

from trio_pool.upstream.client import UpstreamClient


@attrs.frozen
class Reply:
    status: int
    headers: list[tuple[bytes, bytes]]
    content: bytes


class HttpClient:
    """``async with HttpClient() as http: await http.request("GET", url)``."""

    def __init__(self) -> None:
        self.client = UpstreamClient()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        content: bytes = b"",
    ) -> Reply:
        status, got, body = await self.client.request(
            method, url, headers or [], content, limit=64 * 1024 * 1024
        )
        return Reply(status, [(k.encode("latin-1"), v.encode("latin-1")) for k, v in got], body)

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.client.aclose()
