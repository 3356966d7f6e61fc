"""Shared fixtures: every test is bounded, and nothing reaches beyond loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import trio

from tests.procs import Served, start_serve
from trio_pool.testing.postgres import PgCluster, PostgresUnavailable

StartServe = Callable[..., Awaitable[Served]]


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One throwaway PostgreSQL cluster for the session (Debian's PostgreSQL 15), stopped at
    the end. Without PostgreSQL the tests that need it skip, saying why; with CI set they
    fail instead (CI installs it)."""
    try:
        cluster = PgCluster.start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """A fresh, empty database of the session cluster, for this test alone."""
    return pg_cluster.create_database(f"t_{uuid.uuid4().hex[:16]}")


@pytest.fixture
async def serve_process(nursery: trio.Nursery) -> AsyncIterator[StartServe]:
    """serve_process(workdir, prefix=None) -> a running ``trio-pool serve``; killed at the end."""
    started: list[Served] = []

    async def start(workdir: Path, *, prefix: list[str] | None = None) -> Served:
        served = await start_serve(nursery, workdir, prefix=prefix)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.returncode is None:
            served.process.kill()
            with trio.move_on_after(5, shield=True):
                await served.process.wait()
