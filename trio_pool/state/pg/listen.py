"""LISTEN/NOTIFY under trio: one connection per host waits on its socket for changes.

Writers call ``pg_notify('trio_pool', 'seq:N')`` (a sync exchange wrote) or
``'cred:ACCOUNT'`` (credentials changed) inside their transaction; PostgreSQL delivers it
at commit. This host waits with ``trio.lowlevel.wait_readable(conn.fileno())`` and then
drains with ``conn.notifies(timeout=0)``, so no thread is parked on the socket. LISTEN has
no replay: after a reconnect every waiter is woken once (what it missed is read by its
next poll, which runs at least every second anyway).
"""

from __future__ import annotations

import logging

import psycopg
import trio

from trio_pool.config import StateConfig
from trio_pool.errors import StateError
from trio_pool.state.pg.connect import connect
from trio_pool.state.pg.exchange import CHANNEL

log = logging.getLogger(__name__)

RECONNECT_S = 1.0


class Wakeup:
    """A level-triggered flag a loop sleeps on: ``set()`` from anywhere, ``wait(t)``."""

    def __init__(self) -> None:
        self._event = trio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Sleep until set or ``seconds`` passed; True if set. Clears the flag."""
        with trio.move_on_after(seconds):
            await self._event.wait()
        fired = self._event.is_set()
        if fired:
            self._event = trio.Event()
        return fired


class Listener:
    def __init__(self, url: str, settings: StateConfig, *, name: str) -> None:
        self.url = url
        self.settings = settings
        self.name = name
        self.sync = Wakeup()  # a sync exchange wrote
        self.credentials = Wakeup()  # an account's credentials changed (the reloader)
        self.leases = Wakeup()  # the same, for refreshes waiting on another host
        self.changed_accounts: set[str] = set()
        self.connected = False

    def _wake_all(self) -> None:
        self.sync.set()
        self.credentials.set()
        self.leases.set()

    def _dispatch(self, payload: str) -> None:
        kind, _, detail = payload.partition(":")
        if kind == "cred":
            self.changed_accounts.add(detail)
            self.credentials.set()
            self.leases.set()
        elif detail.partition(":")[2] != self.name:
            self.sync.set()  # another host wrote (our own writes need no re-read)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled, reconnecting after a failure."""
        task_status.started()
        while True:
            conn: psycopg.Connection | None = None
            try:
                conn = await trio.to_thread.run_sync(self._open)
                if not self.connected:
                    self.connected = True
                    self._wake_all()  # whatever happened while we were away
                while True:
                    await trio.lowlevel.wait_readable(conn.fileno())
                    for notice in conn.notifies(timeout=0):
                        self._dispatch(notice.payload)
            except (StateError, psycopg.Error, OSError) as exc:
                if self.connected:
                    log.warning(
                        "state.listen.lost reason=%s", str(exc).splitlines()[0] if str(exc) else exc
                    )
                self.connected = False
            finally:
                if conn is not None:
                    conn.close()
            await trio.sleep(RECONNECT_S)

    def _open(self) -> psycopg.Connection:
        conn = connect(self.url, self.settings, application_name=f"trio-pool listen {self.name}")
        try:
            conn.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            conn.close()
            raise
        return conn
