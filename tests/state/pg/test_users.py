"""Users, keys and the session secret in PostgreSQL: what one host writes, another reads."""

from __future__ import annotations

from trio_pool.auth import pg_users as users
from trio_pool.auth.directory import Directory
from trio_pool.config import StateConfig
from trio_pool.state.pg.store import PgStore


async def test_a_user_and_key_added_on_one_host_authenticate_on_another(pg_url: str) -> None:
    """Host 1 adds a user and issues a key; host 2 loads the directory and accepts that key
    and the same session secret (a login cookie works on every host)."""
    one = await PgStore.open(pg_url, StateConfig(), writer="one")
    two = await PgStore.open(pg_url, StateConfig(), writer="two")
    try:
        first = Directory(one, queries=users)
        await first.start()
        _, key = await first.add_user("ann")
        second = Directory(two, queries=users)
        await second.start()
        found = second.authenticate(key, 0.0)
        assert found is not None
        assert found.name == "ann"
        assert first.secret == second.secret
        await second.revoke_key(next(iter(second.keys)))
        await first.load()
        assert first.authenticate(key, 0.0) is None
    finally:
        await one.aclose()
        await two.aclose()
