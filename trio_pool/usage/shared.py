"""Where the ledger goes in multi-host mode: PostgreSQL, else this host's outbox.

``Ledger.flush`` hands each batch to ``write``. Rows get their uid here, before the first
attempt, so a batch that goes to the outbox and is replayed later keeps the same ids and
is stored once (``usage/pg_ledger.py``). The outbox is replayed, oldest first, before each
new batch: the ledger stays in arrival order as far as a host can tell.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from trio_pool.errors import StateError
from trio_pool.state.pg.store import PgStore
from trio_pool.usage import pg_ledger
from trio_pool.usage.ledger import LedgerRow
from trio_pool.usage.outbox import Outbox

log = logging.getLogger(__name__)

REPLAY_ROWS = 1000


class SharedLedgerSink:
    def __init__(self, pg: PgStore, outbox: Outbox) -> None:
        self.pg = pg
        self.outbox = outbox
        self.replayed = 0

    async def write(self, rows: Sequence[LedgerRow]) -> float:
        """Store ``rows``; the worker thread's CPU seconds. Raises StateError only when
        neither the database nor the outbox took them (the caller keeps them)."""
        items = [(uuid.uuid4().hex, row) for row in rows]
        if await self.replay():
            try:
                _, cpu = await self.pg.run(pg_ledger.insert, items, self.pg.writer)
                return cpu
            except StateError as exc:
                log.warning("ledger.outbox.write rows=%d reason=%s", len(items), exc)
        await self.outbox.put(items)
        return 0.0

    async def replay(self) -> bool:
        """Move the outbox into the database; False if rows are left (engine down)."""
        while self.outbox.pending:
            items = await self.outbox.take(REPLAY_ROWS)
            if not items:
                break
            try:
                await self.pg.run(pg_ledger.insert, items, self.pg.writer)
            except StateError:
                return False
            await self.outbox.delete([uid for uid, _ in items])
            self.replayed += len(items)
            log.info("ledger.outbox.replayed rows=%d left=%d", len(items), self.outbox.pending)
        return True

    async def prune(self, before: float) -> int:
        return await self.pg.run(pg_ledger.prune, before)
