"""The whole request path without a socket: the front handler and the simulated upstreams,
each behind an ``HTTPConnection`` on ``trio.testing`` memory streams.

For tests on ``autojump_clock``: a queue wait or a slow stream takes no real time, and no
socket is ever opened (style.md §5.8, "End-to-end test without sockets").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import h11
import trio
import trio.testing

from tests.server.test_connection import Client
from trio_pool import clock, front
from trio_pool.accounts.pool import Pool
from trio_pool.config import Config
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.demo import demo_config
from trio_pool.server.connection import Exchange, Handler, HTTPConnection, ServerLimits
from trio_pool.server.server import Shutdown
from trio_pool.services import Services, make_services
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import SimUpstream
from trio_pool.testing.state import SimState
from trio_pool.upstream.client import UpstreamClient
from trio_pool.upstream.connect import Origin

LIMITS = ServerLimits(head_timeout_s=600.0, keepalive_idle_s=600.0)


@attrs.define(eq=False)
class MemoryServer:
    """Serves ``handler`` on a fresh memory stream pair per connection (in ``nursery``)."""

    nursery: trio.Nursery
    handler: Handler
    stop: trio.Event = attrs.field(factory=trio.Event)
    opened: int = 0

    def connect(self) -> trio.abc.Stream:
        client, server = trio.testing.memory_stream_pair()
        self.opened += 1
        self.nursery.start_soon(HTTPConnection(server, LIMITS).serve, self.handler, self.stop)
        return client

    async def __call__(self, origin: Origin) -> trio.abc.Stream:
        """The upstream client's connector: every origin is this server."""
        return self.connect()


@attrs.define(eq=False)
class MemoryProxy:
    services: Services
    sim: SimState
    front: MemoryServer
    upstream: MemoryServer

    def client(self) -> Client:
        """A new client connection to the proxy (an h11 client over a memory stream)."""
        return Client(self.front.connect())

    async def post(self, path: str, body: bytes, *headers: tuple[str, str]) -> tuple[int, bytes]:
        """One request on a new connection: (status, whole body)."""
        client = self.client()
        await client.send(
            request("POST", path, body, *headers), h11.Data(data=body), h11.EndOfMessage()
        )
        response, data = await client.response()
        await client.stream.aclose()
        return response.status_code, data


def request(method: str, path: str, body: bytes, *headers: tuple[str, str]) -> h11.Request:
    fields = [("host", "127.0.0.1"), ("content-length", str(len(body))), *headers]
    return h11.Request(method=method, target=path, headers=fields)


async def start_memory_proxy(
    nursery: trio.Nursery,
    workdir: Path,
    accounts: list[tuple[str, str]],
    tweak: Callable[[Config], Config] | None = None,
) -> MemoryProxy:
    """The simulator with ``accounts`` ((provider, name) pairs), their pool files in
    ``workdir``, and the proxy's services over memory streams; ``tweak`` edits the config."""
    now = clock.now()
    sim = SimState.with_accounts(new_account(p, n, now=now) for p, n in accounts)  # type: ignore[arg-type]
    write_pool(workdir / "pool", sim, now=now)
    base = demo_config("http://sim.invalid", workdir, "127.0.0.1:0")
    if tweak is not None:
        base = tweak(base)
    pool = Pool(base.routing)
    registry = AccountRegistry(base, pool)
    registry.scan()  # small files in a temporary directory: no thread needed
    upstream = MemoryServer(nursery, SimUpstream(sim))
    services = make_services(base, pool, registry, UpstreamClient(connector=upstream), Shutdown())

    async def handle(exchange: Exchange) -> None:
        await front.handle(services, exchange)

    return MemoryProxy(services, sim, MemoryServer(nursery, handle), upstream)
