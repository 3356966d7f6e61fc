"""A stand-in proxy for the data API and a small loopback HTTP client for the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import attrs
import trio

from trio_pool.accounts.pool import Pool
from trio_pool.auth.directory import Directory
from trio_pool.config import RoutingConfig
from trio_pool.server.connection import Exchange, ServerLimits
from trio_pool.server.server import Shutdown, serve_http
from trio_pool.services import SelfCall
from trio_pool.state.store import StateStore
from trio_pool.upstream.client import UpstreamClient
from trio_pool.usage.burn import BurnHistory
from trio_pool.usage.live import LiveFeed

TIMEOUT_S = 10.0


@attrs.define
class Problems:
    problems: dict[str, str] = attrs.field(factory=dict)


@attrs.define(eq=False)
class StandIn:
    """What the data API uses of the services (``dashboard.context.DataServices``)."""

    pool: Pool
    registry: Problems
    client: UpstreamClient
    shutdown: Shutdown
    history: StateStore | None
    live: LiveFeed = attrs.field(factory=LiveFeed)
    burn: BurnHistory = attrs.field(factory=BurnHistory)
    self_call: SelfCall = attrs.field(factory=lambda: SelfCall(token="internal-secret"))
    directory: Directory = attrs.field(factory=lambda: Directory(None))


def make_standin(state: StateStore | None = None) -> StandIn:
    return StandIn(Pool(RoutingConfig()), Problems(), UpstreamClient(), Shutdown(), state)


@asynccontextmanager
async def serving(
    handler: Callable[[Exchange], Awaitable[None]], shutdown: Shutdown
) -> AsyncIterator[str]:
    """``handler`` served on 127.0.0.1:0; yields the base URL; cancelled on exit."""
    async with trio.open_nursery() as nursery:
        addresses = await nursery.start(
            lambda task_status: serve_http(
                handler,
                host="127.0.0.1",
                port=0,
                limits=ServerLimits(),
                shutdown=shutdown,
                task_status=task_status,
            )
        )
        host, port = addresses[0]
        yield f"http://{host}:{port}"
        nursery.cancel_scope.cancel()


async def call(
    client: UpstreamClient,
    base: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    with trio.fail_after(TIMEOUT_S):
        status, got, data = await client.request(method, base + path, headers or [], body)
    return status, dict(got), data


def post_headers() -> list[tuple[str, str]]:
    return [("content-type", "application/json"), ("x-trio-pool", "1")]


def as_json(data: bytes) -> Any:
    import json

    return json.loads(data)
