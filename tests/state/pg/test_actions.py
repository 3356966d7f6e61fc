"""The needs-action verdict on PostgreSQL: shared by every host, and about one version of
the stored credentials (a newer version, e.g. a re-login imported, makes it stale)."""

from __future__ import annotations

import attrs
import trio

from tests.accounts.helpers import T0, make_pool, state_of
from tests.accounts.test_actions import VALIDATE
from trio_pool import clock
from trio_pool.config import StateConfig
from trio_pool.state.pg.store import PgStore
from trio_pool.state.sync import StateSync

A = "codex/a"


async def test_an_action_set_on_one_host_holds_on_the_others_until_the_credentials_change(
    pg_url: str,
) -> None:
    """Host one sets needs-action about credential version 1: a host at version 1 takes it
    (with its message and link), a host already at version 2 does not; clearing it on one
    host clears it everywhere."""
    stores: list[PgStore] = []

    async def host(version: int) -> StateSync:
        store = await PgStore.open(pg_url, StateConfig(), writer=f"v{version}-{len(stores)}")
        stores.append(store)
        sync = StateSync(store, make_pool("a", "b"), lambda _name: version)
        await sync.sync_once()
        return sync

    try:
        with trio.fail_after(20):
            one = await host(1)
            one.pool.set_action(A, attrs.evolve(VALIDATE, since_at=T0))
            await one.sync_once()
            same = await host(1)
            assert state_of(same.pool, A, clock.now()) == "needs_action"
            assert same.pool.action_of(A) == attrs.evolve(VALIDATE, since_at=T0)
            assert state_of((await host(2)).pool, A, clock.now()) == "ok"
            same.pool.clear_action(A)
            await same.sync_once()
            await one.sync_once()
            assert state_of(one.pool, A, clock.now()) == "ok"
    finally:
        for store in stores:
            await store.aclose()
