"""The ``serve`` fixture: one HTTPConnection over a memory stream, with an h11 test client;
and tests/proxy's running proxy (``make_env``) for the audit's attacks over loopback."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from tests.proxy.conftest import make_env
from tests.server.test_connection import LIMITS, Client, Serve
from trio_pool.server.connection import Handler, HTTPConnection, ServerLimits
from trio_pool.server.server import Shutdown

__all__ = ["make_env", "serve"]


@pytest.fixture
def serve(nursery: trio.Nursery) -> Serve:
    """serve(handler) -> Client connected to a fresh HTTPConnection running that handler."""

    async def start(
        handler: Handler, limits: ServerLimits = LIMITS, shutdown: Shutdown | None = None
    ) -> Client:
        client_stream, server_stream = trio.testing.memory_stream_pair()
        conn = HTTPConnection(server_stream, limits)
        stop = (shutdown or Shutdown()).requested
        nursery.start_soon(conn.serve, handler, stop)
        return Client(client_stream)

    return start
