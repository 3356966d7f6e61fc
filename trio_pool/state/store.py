"""state.db from trio: one connection, used by one worker thread at a time.

Every call runs in ``trio.to_thread`` behind a CapacityLimiter(1), so the trio thread never
blocks on SQLite and the connection is never used by two threads at once. SQLite errors
become StateError here (the one boundary).
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import trio

from trio_pool import clock
from trio_pool.accounts.model import PinRecord
from trio_pool.errors import StateError
from trio_pool.state import db, ops

log = logging.getLogger(__name__)

T = TypeVar("T")

STATE_FILE = "state.db"
# A refresh lock outlives the slowest token call (connect 10 s + first byte 120 s by
# default), so it never expires under a live holder; a dead holder's lock is taken at once.
LOCK_TTL_S = 150.0
LOCK_WAIT_S = 20.0  # then give up: a transient refresh failure, retried later
LOCK_POLL_S = 0.05


class StateStore:
    """This process's handle on state.db."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._limiter = trio.CapacityLimiter(1)
        # Names this process in the db (rows it wrote, locks it holds).
        self.writer = f"{os.getpid()}:{secrets.token_hex(4)}"
        self._closed = False

    @classmethod
    async def open(cls, data_dir: Path) -> StateStore:
        """Open (creating and migrating if needed) ``data_dir/state.db``."""
        path = data_dir / STATE_FILE
        try:
            conn = await trio.to_thread.run_sync(db.connect, path)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(f"{path}: cannot open the state db ({exc})") from None
        return cls(conn, path)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._conn.close, limiter=self._limiter)

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(conn, *args, **kwargs)`` in the store's worker thread."""
        if self._closed:
            raise StateError(f"{self.path}: the state db is closed")
        try:
            return await trio.to_thread.run_sync(
                partial(fn, self._conn, *args, **kwargs), limiter=self._limiter
            )
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: {exc}") from None

    async def exchange(
        self,
        *,
        now: float,
        pushes: Sequence[ops.Push],
        pins: Sequence[PinRecord],
        fetch: Sequence[str],
        since: int,
    ) -> ops.Pulled:
        return await self.run(
            ops.exchange,
            writer=self.writer,
            now=now,
            pushes=pushes,
            pins=pins,
            fetch=fetch,
            since=since,
        )

    async def prune_pins(self, before: float) -> int:
        return await self.run(ops.prune_pins, before)

    @asynccontextmanager
    async def refresh_lock(
        self, account: str, *, wait_s: float = LOCK_WAIT_S, ttl_s: float = LOCK_TTL_S
    ) -> AsyncIterator[bool]:
        """Hold ``account``'s refresh lock across every process of the host.

        Yields True when held, False when another holder kept it past ``wait_s``. If the db
        itself fails, the error is logged and the refresh goes ahead unlocked (True): a
        broken db must not stop every token from being refreshed.
        """
        holder = f"{self.writer}:{secrets.token_hex(4)}"
        held = False
        try:
            with trio.move_on_after(wait_s):
                while True:
                    held = await self.run(ops.try_lock, account, holder, clock.now(), ttl_s)
                    if held:
                        break
                    await trio.sleep(LOCK_POLL_S)  # the holder is in another process
        except StateError as exc:
            log.error("state.lock.failed account=%s reason=%s (refreshing unlocked)", account, exc)
            yield True
            return
        try:
            yield held
        finally:
            if held:
                with trio.CancelScope(shield=True):
                    try:
                        await self.run(ops.unlock, account, holder)
                    except StateError as exc:
                        log.warning("state.unlock.failed account=%s reason=%s", account, exc)
