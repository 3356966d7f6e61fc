"""The PostgreSQL schema: migrations apply once, concurrently, and refuse a newer database."""

from __future__ import annotations

import threading

import psycopg
import pytest

from trio_pool.state.pg import schema


def test_two_hosts_migrating_at_once_apply_each_migration_once(pg_url: str) -> None:
    """Four connections migrate together: the advisory lock serialises them, the schema
    version is recorded once per migration and nobody fails."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with psycopg.connect(pg_url, autocommit=True) as conn:
                assert schema.migrate(conn) == schema.SCHEMA_VERSION
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert [r[0] for r in rows] == list(range(1, schema.SCHEMA_VERSION + 1))


def test_a_database_from_a_newer_trio_pool_is_refused(pg_url: str) -> None:
    """A schema version beyond what this build knows is an error, not a silent misread."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        schema.migrate(conn)
        conn.execute("INSERT INTO schema_version VALUES (%s)", (schema.SCHEMA_VERSION + 1,))
        with pytest.raises(psycopg.DataError, match="knows up to"):
            schema.migrate(conn)
