"""Fixtures: a simulator on 127.0.0.1:0 with one account per provider and a hand-driven clock."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import ManualClock, Sim
from trio_pool.testing.issue import new_account
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState

START = 1_900_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def state(clock: ManualClock) -> SimState:
    state = SimState(clock=clock)
    for provider in ("codex", "claude", "gemini"):
        state.add(new_account(provider, "a", now=START))
    return state


@pytest.fixture
async def sim(state: SimState, clock: ManualClock, nursery: trio.Nursery) -> Sim:
    base = await nursery.start(serve_simulator, state)
    return Sim(state=state, base=base, clock=clock)


@pytest.fixture
async def http() -> AsyncIterator[HttpClient]:
    async with HttpClient() as pool:
        yield pool
