"""The one place that chooses where shared state lives: data/state.db or PostgreSQL.

Without ``state_url`` everything is as it always was: one SQLite file per host, shared by
that host's processes. With it, several hosts share PostgreSQL: the sync exchange, the
ledger (through a local outbox), users, keys and settings, and the credentials, sealed
with the key from the environment. ``app.serve_proxy`` opens a ``Backend`` and takes what
it needs from it. It sits above ``state``, ``usage`` and ``auth``, whose PostgreSQL parts
it puts together (``state/pg``, ``usage/pg_ledger.py``, ``auth/pg_users.py``).
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from trio_pool import clock
from trio_pool.auth import db as sqlite_auth
from trio_pool.config import Config
from trio_pool.errors import StateError, TrioPoolError
from trio_pool.state.store import StateStore
from trio_pool.usage.outbox import Outbox

if TYPE_CHECKING:
    from trio_pool.state.pg.hosts import Heartbeat
    from trio_pool.state.pg.listen import Listener
    from trio_pool.state.pg.sealing import Keyring
    from trio_pool.state.pg.store import PgStore
    from trio_pool.usage.shared import SharedLedgerSink

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class Backend:
    local: StateStore | None = None  # data/state.db: single-host mode only
    shared: PgStore | None = None  # PostgreSQL: multi-host mode
    keyring: Keyring | None = attrs.field(default=None, repr=False)
    listener: Listener | None = None
    outbox: Outbox | None = None
    sink: SharedLedgerSink | None = None
    heartbeat: Heartbeat | None = None

    @property
    def multi_host(self) -> bool:
        return self.shared is not None

    @property
    def auth_store(self) -> StateStore | PgStore | None:
        return self.shared or self.local

    @property
    def auth_queries(self) -> ModuleType:
        if self.shared is None:
            return sqlite_auth
        from trio_pool.auth import pg_users  # multi-host only (see open_backend)

        return pg_users

    def describe(self) -> dict[str, Any]:
        """What /healthz and ``status`` say about the state engine."""
        if self.shared is None:
            return {"engine": "sqlite", "reachable": self.local is not None}
        store = self.shared
        document: dict[str, Any] = {
            "engine": "postgresql",
            "host": store.writer,
            "reachable": store.reachable,
            "listening": self.listener is not None and self.listener.connected,
        }
        if store.down_since is not None:
            document["down_for_s"] = round(clock.now() - store.down_since, 1)
            document["reason"] = store.last_error
        if self.outbox is not None:
            document["outbox_rows"] = self.outbox.pending
        if self.heartbeat is not None:
            document["hosts"] = self.heartbeat.describe()
        return document

    async def aclose(self) -> None:
        if self.outbox is not None:
            await self.outbox.aclose()
        if self.shared is not None:
            await self.shared.aclose()
        if self.local is not None:
            await self.local.aclose()


async def open_backend(config: Config) -> Backend:
    """Single host: state.db, or nothing if it cannot be opened (the proxy still serves).
    Multi-host: PostgreSQL, migrated; raises when it is unreachable (refusing to start
    beats serving a pool the other hosts cannot see)."""
    if config.state_url is None:
        try:
            return Backend(local=await StateStore.open(config.data_dir))
        except TrioPoolError as exc:
            log.error("state.unavailable reason=%s (running without shared state)", exc)
            return Backend()
    # Imported here, not at the top: the PostgreSQL driver and cryptography add about 20 MB
    # to a process's resident memory, which a single host never needs.
    from trio_pool.state.pg.hosts import Heartbeat
    from trio_pool.state.pg.listen import Listener
    from trio_pool.state.pg.sealing import Keyring
    from trio_pool.state.pg.store import PgStore
    from trio_pool.usage.shared import SharedLedgerSink

    keyring = Keyring.from_env(config.state.key_env)
    store = await PgStore.open(config.state_url, config.state)
    try:
        outbox = await Outbox.open(config.data_dir)
    except StateError:
        await store.aclose()
        raise
    listener = Listener(config.state_url, config.state, name=store.writer)
    log.info("state.engine.open engine=postgresql url=%s host=%s", store.shown, store.writer)
    return Backend(
        shared=store,
        keyring=keyring,
        listener=listener,
        outbox=outbox,
        sink=SharedLedgerSink(store, outbox),
        heartbeat=Heartbeat(store),
    )
