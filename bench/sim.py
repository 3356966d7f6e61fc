"""The simulator process of the benchmark: ``python -m bench.sim --port P --pool-dir D``.

It runs in its own process so that its CPU is not counted as the proxy's. It mints a few
accounts per provider with windows too large to fill, writes their logins into the pool
directory, and serves the simulated upstreams plus two endpoints of its own:
``POST /bench/config`` (a JSON object of ``SimConfig`` fields) switches the reply shape between
workloads, and ``GET /bench/stats`` counts the requests and connections the simulator saw.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from functools import partial
from pathlib import Path

import trio

from trio_pool.server.connection import Exchange, ServerLimits
from trio_pool.server.server import Shutdown, serve_listeners
from trio_pool.testing import issue
from trio_pool.testing.accounts import Provider, SimWindow
from trio_pool.testing.faults import SimConfig
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import SimUpstream
from trio_pool.testing.state import SimState

CONTROL_PATH = "/bench/config"
STATS_PATH = "/bench/stats"
PROVIDERS: tuple[Provider, ...] = ("codex", "claude", "gemini")
# Far more than a benchmark run sends, so no account ever answers 429.
HUGE = 1e12


def generous_windows(provider: Provider) -> list[SimWindow]:
    if provider == "gemini":
        return [SimWindow("minute", 60.0, HUGE), SimWindow("daily", 86400.0, HUGE)]
    return [SimWindow("5h", 5 * 3600.0, HUGE), SimWindow("7d", 7 * 86400.0, HUGE)]


def bench_state(accounts_per_provider: int, now: float) -> SimState:
    accounts = [
        issue.new_account(provider, f"bench{i}", now=now, windows=generous_windows(provider))
        for provider in PROVIDERS
        for i in range(accounts_per_provider)
    ]
    return SimState.with_accounts(accounts)


class BenchUpstream:
    """The simulator's handler plus the control endpoint."""

    def __init__(self, state: SimState) -> None:
        self.state = state
        self.sim = SimUpstream(state)
        self.requests = 0
        self.peers: set[str] = set()  # client "host:port"s: one per connection opened
        self.paths: Counter[str] = Counter()

    async def __call__(self, ex: Exchange) -> None:
        path = ex.head.path
        if path == STATS_PATH:
            stats = {"requests": self.requests, "connections": len(self.peers), "paths": self.paths}
            await ex.respond(
                200, [("content-type", "application/json")], json.dumps(stats).encode()
            )
            return
        if path != CONTROL_PATH:
            self.requests += 1
            self.peers.add(ex.client)
            self.paths[f"{ex.head.method} {path}"] += 1
            await self.sim(ex)
            return
        try:
            fields = json.loads(await ex.read_body() or b"{}")
            self.state.config = SimConfig(**fields)
        except (TypeError, ValueError) as exc:
            await ex.respond(400, [("content-type", "text/plain")], str(exc).encode())
            return
        await ex.respond(200, [("content-type", "application/json")], b"{}")


async def serve(state: SimState, port: int) -> None:
    limits = ServerLimits(head_timeout_s=30.0, keepalive_idle_s=300.0)
    listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
    shutdown = Shutdown()
    async with trio.open_nursery() as nursery:
        await nursery.start(
            partial(
                serve_listeners, BenchUpstream(state), listeners, limits=limits, shutdown=shutdown
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sim")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool-dir", type=Path, required=True)
    parser.add_argument("--accounts", type=int, default=3)
    args = parser.parse_args()
    now = time.time()
    state = bench_state(args.accounts, now)
    write_pool(args.pool_dir, state, now=now)
    try:
        trio.run(serve, state, args.port)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
