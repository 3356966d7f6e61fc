"""The hosts of a multi-host pool: a heartbeat row per host, listed by ``status``.

Every host upserts its row every BEAT_S (on the database clock's terms: ``seen_at`` is the
host's wall clock, compared with the reader's, so hosts need roughly synchronised clocks,
as they do for quota reset times anyway). A host not seen for DEAD_AFTER_S is shown as
gone; one that shut down cleanly says so (``stopped_at``). Rows of hosts gone for a day are
deleted. The list each beat reads back is kept in memory for ``/healthz``: a request never
waits on the database for it.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import attrs
import psycopg
import trio

from trio_pool import __version__, clock
from trio_pool.errors import StateError
from trio_pool.state.pg.store import PgStore

log = logging.getLogger(__name__)

BEAT_S = 5.0
DEAD_AFTER_S = 30.0  # six missed beats (better-ccflare: 5 s / 30 s; CLIProxyAPI Home: 5 / 20)
FORGET_AFTER_S = 86400.0


@attrs.frozen
class HostRow:
    host_id: str
    hostname: str
    pid: int
    version: str
    started_at: float
    seen_at: float
    stopped_at: float | None

    def describe(self, now: float, me: str) -> dict[str, Any]:
        age = max(0.0, now - self.seen_at)
        if self.stopped_at is not None:
            state = "stopped"
        elif age > DEAD_AFTER_S:
            state = "gone"
        else:
            state = "up"
        return {
            "host": self.host_id,
            "hostname": self.hostname,
            "pid": self.pid,
            "version": self.version,
            "state": state,
            "seen_s_ago": round(age, 1),
            "this": self.host_id == me,
        }


def beat(
    conn: psycopg.Connection,
    host_id: str,
    hostname: str,
    pid: int,
    version: str,
    started_at: float,
    now: float,
) -> list[HostRow]:
    """Record this host as alive; every host's row (this one included)."""
    with conn.transaction():
        conn.execute(
            "INSERT INTO hosts (host_id, hostname, pid, version, started_at, seen_at) "
            "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (host_id) DO UPDATE SET "
            "hostname = excluded.hostname, pid = excluded.pid, version = excluded.version, "
            "started_at = excluded.started_at, seen_at = excluded.seen_at, stopped_at = NULL",
            (host_id, hostname, pid, version, started_at, now),
        )
        conn.execute("DELETE FROM hosts WHERE seen_at < %s", (now - FORGET_AFTER_S,))
        return list_hosts(conn)


def list_hosts(conn: psycopg.Connection) -> list[HostRow]:
    rows = conn.execute(
        "SELECT host_id, hostname, pid, version, started_at, seen_at, stopped_at FROM hosts "
        "ORDER BY host_id"
    ).fetchall()
    return [HostRow(*row) for row in rows]


def stopped(conn: psycopg.Connection, host_id: str, now: float) -> None:
    conn.execute(
        "UPDATE hosts SET stopped_at = %s, seen_at = %s WHERE host_id = %s", (now, now, host_id)
    )


class Heartbeat:
    """This host's beat, and the last list of hosts it read."""

    def __init__(self, store: PgStore) -> None:
        self.store = store
        self.started_at = clock.now()
        self.hosts: list[HostRow] = []

    def describe(self) -> list[dict[str, Any]]:
        now = clock.now()
        return [row.describe(now, self.store.writer) for row in self.hosts]

    async def beat_once(self) -> None:
        self.hosts = await self.store.run(
            beat, self.store.writer, socket.gethostname(), os.getpid(), __version__,
            self.started_at, clock.now(),
        )  # fmt: skip

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Beat until cancelled; then say this host stopped (a clean shutdown)."""
        try:
            await self.beat_once()
        except StateError:
            pass  # the store has logged the outage
        task_status.started()
        try:
            while True:
                await trio.sleep(BEAT_S)
                try:
                    await self.beat_once()
                except StateError:
                    pass
        finally:
            with trio.move_on_after(2, shield=True):
                try:
                    await self.store.run(stopped, self.store.writer, clock.now())
                except StateError:
                    pass
