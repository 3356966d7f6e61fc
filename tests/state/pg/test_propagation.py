"""Propagation between hosts through PostgreSQL: three pools, each with its own store,
LISTEN connection and sync loop (the production path of state/sync.py, minus HTTP)."""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator

import pytest
import trio

from tests.accounts.helpers import make_pool
from tests.state.test_sync import cool, state_of
from trio_pool import clock
from trio_pool.app import MULTI_HOST_POLL_S
from trio_pool.config import StateConfig
from trio_pool.state.pg.listen import Listener
from trio_pool.state.pg.store import PgStore
from trio_pool.state.sync import StateSync, serve_state_sync

TRIALS = 100
ACCOUNTS = [f"a{i:03d}" for i in range(TRIALS + 2)]


@pytest.fixture
async def hosts(pg_url: str) -> AsyncIterator[list[StateSync]]:
    settings = StateConfig()
    stores: list[PgStore] = []
    syncs: list[StateSync] = []
    async with trio.open_nursery() as nursery:
        for index in range(3):
            store = await PgStore.open(pg_url, settings, writer=f"host{index}")
            stores.append(store)
            listener = Listener(pg_url, settings, name=f"host{index}")
            await nursery.start(listener.serve)
            sync = await nursery.start(
                lambda task_status, s=store, w=listener: serve_state_sync(
                    s,
                    make_pool(*ACCOUNTS),
                    wake=w.sync,
                    poll_s=MULTI_HOST_POLL_S,
                    task_status=task_status,
                )
            )
            syncs.append(sync)
        try:
            yield syncs
        finally:
            nursery.cancel_scope.cancel()
    for store in stores:
        await store.aclose()


async def test_a_quota_429_on_one_host_benches_the_account_on_the_others_within_a_second(
    hosts: list[StateSync],
) -> None:
    """Over 100 trials, the time from a quota 429 on host A until hosts B and C both skip
    the account: p99 under one second (NOTIFY wakes them; the 1 s poll is the fallback)."""
    a, b, c = (s.pool for s in hosts)
    delays: list[float] = []
    with trio.fail_after(120):
        for _ in range(TRIALS):
            before = {v.name for v in a.accounts(clock.now()) if v.state == "cooling"}
            started = time.perf_counter()
            cool(a, clock.now() + 3600)
            (name,) = {v.name for v in a.accounts(clock.now()) if v.state == "cooling"} - before
            while not (state_of(b, name) == state_of(c, name) == "cooling"):
                await trio.sleep(0.002)
            delays.append(time.perf_counter() - started)
    delays.sort()
    p50, p99 = statistics.median(delays), delays[int(len(delays) * 0.99) - 1]
    print(f"\npropagation over {TRIALS} trials: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
    assert p99 < 1.0
