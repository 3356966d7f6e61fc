"""A running proxy in front of the simulated upstreams, over real loopback sockets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from trio_pool import clock
from trio_pool.app import Running, serve_proxy
from trio_pool.config import Config
from trio_pool.demo import demo_config
from trio_pool.services import Services
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState


@attrs.define
class Env:
    running: Running
    state: SimState
    sim_base: str
    pool_dir: Path

    @property
    def base(self) -> str:
        return self.running.base_url

    @property
    def services(self) -> Services:
        """The running proxy's services (pool, registry, directory, ledger, ...)."""
        return self.running.services

    def sim(self, key: str) -> Any:
        return self.state.account(key)


@pytest.fixture
def make_env(nursery: trio.Nursery, tmp_path: Path) -> Callable[..., Any]:
    """make_env(accounts=..., tweak=...) -> Env with a fresh simulator and proxy."""

    async def start(
        accounts: list[tuple[str, str]] | None = None,
        tweak: Callable[[Config], Config] | None = None,
        state: SimState | None = None,
    ) -> Env:
        now = clock.now()
        if state is None:
            pairs = accounts or [
                ("codex", "a"),
                ("codex", "b"),
                ("claude", "a"),
                ("claude", "b"),
                ("gemini", "a"),
                ("gemini", "b"),
            ]
            state = SimState.with_accounts(new_account(p, n, now=now) for p, n in pairs)  # type: ignore[arg-type]
        sim_base = await nursery.start(serve_simulator, state)
        write_pool(tmp_path / "pool", state)
        config = demo_config(sim_base, tmp_path, "127.0.0.1:0")
        config = attrs.evolve(config, routing=attrs.evolve(config.routing, queue_wait_s=0.0))
        if tweak is not None:
            config = tweak(config)
        running = await nursery.start(serve_proxy, config)
        return Env(running, state, sim_base, tmp_path / "pool")

    return start


@pytest.fixture
async def env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env()
    return env
