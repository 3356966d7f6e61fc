"""Shared fixtures: every test is bounded, and nothing reaches beyond loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from trio_pool.testing.postgres import PgCluster, PostgresUnavailable


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
