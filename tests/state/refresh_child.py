"""A second trio-pool process for the refresh race: ``python -m tests.state.refresh_child``.

Arguments: WORKDIR SIM_BASE ACCOUNT. Loads WORKDIR/pool with WORKDIR/data/state.db, writes
"ready", waits for a line on stdin, refreshes ACCOUNT once and writes one JSON line: whether
the refresh succeeded, a digest of the access token it ended with, and the account's state.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import trio

from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.demo import demo_config
from trio_pool.state.store import StateStore
from trio_pool.upstream.client import Timeouts, UpstreamClient


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


async def main(workdir: Path, sim_base: str, name: str) -> None:
    config = demo_config(sim_base, workdir, "127.0.0.1:0")
    pool = Pool(config.routing)
    registry = AccountRegistry(config, pool)
    registry.scan()
    store = await StateStore.open(config.data_dir)
    client = UpstreamClient(Timeouts(connect_s=5, first_byte_s=10, idle_s=10))
    try:
        refresher = Refresher(config, registry, pool, client, state=store)
        account = registry.get(name)
        assert account is not None
        stale = account.credentials
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await trio.to_thread.run_sync(sys.stdin.readline)
        ok = await refresher.refresh(account, reason="race", stale=stale)
        view = next(v for v in pool.accounts(clock.now()) if v.name == name)
        answer = {"ok": ok, "access": digest(account.credentials.access_token), "state": view.state}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    finally:
        await client.aclose()
        await store.aclose()


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), sys.argv[2], sys.argv[3])
