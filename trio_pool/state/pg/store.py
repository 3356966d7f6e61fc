"""The shared PostgreSQL from trio: one connection, used by one worker thread at a time.

Like ``state.store.StateStore`` for SQLite: ``run(fn, *args)`` calls ``fn(conn, *args)`` in
``trio.to_thread`` behind a CapacityLimiter(1). A broken connection is dropped and the next
call reconnects, so the store outlives an outage of the engine; ``reachable`` and
``down_since`` say how the last call went (``/healthz`` and ``status`` show them). psycopg
errors become StateError here (the one boundary), without the URL's password.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

import psycopg
import trio

from trio_pool import clock
from trio_pool.accounts.model import PinRecord
from trio_pool.config import StateConfig
from trio_pool.errors import StateError
from trio_pool.state import ops
from trio_pool.state.pg import exchange, schema
from trio_pool.state.pg.connect import connect, redact_url

log = logging.getLogger(__name__)

T = TypeVar("T")


def default_host_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class PgStore:
    """This host's handle on the shared database."""

    def __init__(self, url: str, settings: StateConfig, *, writer: str | None = None) -> None:
        self.url = url
        self.settings = settings
        self.writer = writer or settings.host_id or default_host_id()
        self.shown = redact_url(url)
        self._conn: psycopg.Connection | None = None
        self._limiter = trio.CapacityLimiter(1)
        self._closed = False
        self.reachable = False
        self.down_since: float | None = None  # unix seconds; None while reachable
        self.last_error = ""

    @classmethod
    async def open(cls, url: str, settings: StateConfig, *, writer: str | None = None) -> PgStore:
        """Connect and migrate; raises StateError when the engine cannot be reached."""
        store = cls(url, settings, writer=writer)
        await store.run(schema.migrate)
        return store

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._drop, limiter=self._limiter)

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except psycopg.Error:
                pass

    def _call(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """In the worker thread: (re)connect if needed, run, drop the connection if it broke."""
        if self._conn is None or self._conn.closed:
            self._conn = connect(
                self.url, self.settings, application_name=f"trio-pool {self.writer}"
            )
        conn = self._conn
        try:
            return fn(conn, *args, **kwargs)
        except psycopg.OperationalError:
            self._drop()  # broken or timed out: a fresh connection next time
            raise
        except psycopg.Error:
            if conn.broken:
                self._drop()
            raise

    async def run(self, fn: Callable[..., T], *args: object, **kwargs: object) -> T:
        """``fn(conn, *args, **kwargs)`` in the store's worker thread."""
        if self._closed:
            raise StateError(f"{self.shown}: the state store is closed")
        try:
            result = await trio.to_thread.run_sync(
                partial(self._call, fn, *args, **kwargs), limiter=self._limiter
            )
        except StateError as exc:
            self._mark_down(str(exc))
            raise
        except psycopg.Error as exc:
            reason = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            if isinstance(exc, psycopg.OperationalError):
                self._mark_down(reason)
            raise StateError(f"{self.shown}: {reason}") from None
        if not self.reachable:
            if self.down_since is not None:
                log.warning(
                    "state.engine.reachable again after_s=%.1f", clock.now() - self.down_since
                )
            self.reachable, self.down_since, self.last_error = True, None, ""
        return result

    def _mark_down(self, reason: str) -> None:
        if self.reachable or self.down_since is None:
            log.error("state.engine.unreachable url=%s reason=%s", self.shown, reason)
            self.down_since = clock.now()
        self.reachable = False
        self.last_error = reason

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
            exchange.exchange,
            writer=self.writer,
            now=now,
            pushes=pushes,
            pins=pins,
            fetch=fetch,
            since=since,
        )

    async def prune_pins(self, before: float) -> int:
        return await self.run(exchange.prune_pins, before)
