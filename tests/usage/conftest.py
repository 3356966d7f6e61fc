"""The proxy fixtures of tests/proxy, and reading the ledger a running proxy wrote."""

from __future__ import annotations

import trio

from tests.proxy.conftest import Env, env, make_env
from trio_pool.state.store import StateStore
from trio_pool.usage.ledger import LedgerRow
from trio_pool.usage.store import read_rows

__all__ = ["env", "ledger_rows", "make_env"]


async def ledger_rows(env: Env, count: int) -> list[LedgerRow]:
    """The ledger's rows once ``count`` are on disk (flushing the buffer from here)."""
    ledger = env.services.ledger
    assert ledger is not None
    store = await StateStore.open(env.running.config.data_dir)
    try:
        with trio.fail_after(10):
            while True:
                await ledger.flush(store)
                rows = await store.run(read_rows)
                if len(rows) >= count:
                    return rows
                await trio.sleep(0.02)  # a batch the flusher took is still being written
    finally:
        await store.aclose()
