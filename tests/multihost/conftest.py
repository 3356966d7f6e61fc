"""The ``cluster`` fixture: a simulator, a PostgreSQL database and three host slots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.multihost.cluster import Cluster
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState


@pytest.fixture
async def cluster(tmp_path: Path, pg_url: str) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        sim = SimState()
        base = await nursery.start(serve_simulator, sim)
        made = Cluster(tmp_path, sim, base, pg_url, nursery)
        try:
            yield made
        finally:
            await made.stop_all()
            nursery.cancel_scope.cancel()
