"""Two pools sharing one state.db (as two processes would), and a restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.accounts.helpers import key, lease, make_pool, outcome, reading
from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.providers.base import OutcomeKind, TokenUsage
from trio_pool.state.store import StateStore
from trio_pool.state.sync import StateSync, serve_state_sync


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[list[StateStore]]:
    opened: list[StateStore] = []
    try:
        yield opened
    finally:
        for store in opened:
            await store.aclose()


async def process(tmp_path: Path, stores: list[StateStore], file_ns: int = 1) -> StateSync:
    """A pool of codex/a and codex/b with its own connection to tmp_path/state.db."""
    store = await StateStore.open(tmp_path)
    stores.append(store)
    sync = StateSync(store, make_pool("a", "b"), lambda _name: file_ns)
    await sync.sync_once()
    return sync


def cool(pool: Pool, until: float) -> None:
    got = lease(pool.choose("codex", None, clock.now()))
    pool.report(got, outcome(OutcomeKind.QUOTA, status=429, retry_at=until), clock.now())


def state_of(pool: Pool, name: str) -> str:
    return next(v.state for v in pool.accounts(clock.now()) if v.name == name)


async def test_cooldown_reaches_the_other_process_and_survives_a_restart(
    tmp_path: Path, stores: list[StateStore]
) -> None:
    """A quota cooldown learned by one process benches the account in the others and
    after a restart: no account known to be cooling is hammered."""
    one, two = await process(tmp_path, stores), await process(tmp_path, stores)
    cool(one.pool, clock.now() + 3600)
    cooled = [v.name for v in one.pool.accounts(clock.now()) if v.state == "cooling"]
    await one.sync_once()
    await two.sync_once()
    assert state_of(two.pool, cooled[0]) == "cooling"
    restarted = await process(tmp_path, stores)
    assert state_of(restarted.pool, cooled[0]) == "cooling"


async def test_a_fresh_reading_with_room_clears_the_cooldown_everywhere(
    tmp_path: Path, stores: list[StateStore]
) -> None:
    """Clearing a cooldown early (design.md §3.5) propagates; it is not undone by the db."""
    one, two = await process(tmp_path, stores), await process(tmp_path, stores)
    one.pool.observe(
        "codex/a", reading(1.0, exhausted=True, reading_resets_at=clock.now() + 900), clock.now()
    )
    await one.sync_once()
    await two.sync_once()
    assert state_of(two.pool, "codex/a") == "cooling"
    two.pool.observe("codex/a", reading(0.2, resets_at=clock.now() + 900), clock.now())
    await two.sync_once()
    await one.sync_once()
    await one.sync_once()
    assert state_of(one.pool, "codex/a") == "ok"
    assert state_of(two.pool, "codex/a") == "ok"


async def test_needs_relogin_is_shared_until_the_file_changes(
    tmp_path: Path, stores: list[StateStore]
) -> None:
    """A rejected refresh token benches the account everywhere; new tokens clear it
    everywhere, and a verdict about an older file is dropped on start-up."""
    one, two = await process(tmp_path, stores), await process(tmp_path, stores)
    one.pool.set_needs_relogin("codex/b", "refresh_token_reused")
    await one.sync_once()
    await two.sync_once()
    assert state_of(two.pool, "codex/b") == "needs_relogin"
    assert state_of((await process(tmp_path, stores)).pool, "codex/b") == "needs_relogin"
    newer_file = await process(tmp_path, stores, file_ns=2)
    assert state_of(newer_file.pool, "codex/b") == "ok"
    two.pool.clear_needs_relogin("codex/b")  # what the registry does on new tokens
    await two.sync_once()
    await one.sync_once()
    assert state_of(one.pool, "codex/b") == "ok"


async def test_counters_and_pins_are_shared(tmp_path: Path, stores: list[StateStore]) -> None:
    """Requests and tokens are summed over processes; a conversation keeps its account."""
    one, two = await process(tmp_path, stores), await process(tmp_path, stores)
    got = lease(one.pool.choose("codex", key("conv-1"), clock.now()))
    one.pool.record_usage(got.account, TokenUsage(100, 0, 10), clock.now())
    lease(two.pool.choose("codex", None, clock.now(), exclude=frozenset({"codex/b"})))
    for sync in (one, two, one):
        await sync.sync_once()
    views = {v.name: v for v in one.pool.accounts(clock.now())}
    assert sum(v.requests_today for v in views.values()) == 2
    assert views[got.account].tokens_total == TokenUsage(100, 0, 10)
    assert two.pool.pinned_account("codex", "conv-1", clock.now()) == got.account
    restarted = await process(tmp_path, stores)
    assert sum(v.requests_today for v in restarted.pool.accounts(clock.now())) == 2


async def test_service_writes_soon_after_a_change(tmp_path: Path, stores: list[StateStore]) -> None:
    """The running service loads at start and writes a change within about a second."""
    store = await StateStore.open(tmp_path)
    stores.append(store)
    pool = make_pool("a", "b")
    other = await process(tmp_path, stores)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_state_sync, store, pool)
            pool.set_needs_relogin("codex/a", "invalid_grant")
            while state_of(other.pool, "codex/a") != "needs_relogin":
                await trio.sleep(0.05)
                await other.sync_once()
            nursery.cancel_scope.cancel()
