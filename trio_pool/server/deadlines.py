"""Read deadlines without a cancel scope per read.

A keep-alive client connection may wait for its next request head ``keepalive_idle_s``; an
upstream's response head must come within ``first_byte_s``, and each read of its body
within ``idle_s``. A trio cancel scope around each wait cost about 5-7 µs to enter and
leave (more under load, where each request's code is cold): twice per request, and once
per read of a stream, which a real service trickles in one read per event. Here the reader
registers its connection with a deadline instead (a dict insert, and a delete when the read
is done), and one task per owner (the server, an upstream client) and trio run sleeps
until the earliest deadline. A connection still waiting then is closed:
``trio.lowlevel.notify_closing`` wakes whoever waits on its socket, and the reader sees the
connection marked late and does what it would have done when the scope expired (a timeout
error, or a quiet close).

The task sleeps until the earliest deadline, or, with nothing to watch, for as long as the
last limit registered (a read registered meanwhile with the same limit is due later). A
deadline earlier than the task's wake-up (a shorter limit) wakes it to look again.
"""

from __future__ import annotations

import logging
import math
from typing import Protocol

import trio

log = logging.getLogger(__name__)


class Expirable(Protocol):
    late: bool  # set by expire()

    def expire(self) -> None:
        """Past its deadline: wake its waiters (who see it late) and close it."""


class ReadDeadlines:
    """Connections waiting on a read, each with its deadline."""

    def __init__(self) -> None:
        self._waiting: dict[Expirable, float] = {}
        self._span = 60.0  # the last limit registered
        self._token: trio.lowlevel.TrioToken | None = None  # the run whose task watches
        self._wake = math.inf  # when the watcher looks next
        self._nap: trio.CancelScope | None = None  # the watcher's sleep until then

    def add(self, connection: Expirable, deadline: float) -> None:
        """Watch ``connection`` until ``discard``; it expires at ``deadline`` (trio time)."""
        token = trio.lowlevel.current_trio_token()
        if token is not self._token:
            # First use in this trio run (a system task: it lives as long as the run).
            # Whatever an earlier run left waiting is no concern of this one.
            self._token, self._wake, self._nap = token, math.inf, None
            self._waiting.clear()
            trio.lowlevel.spawn_system_task(self._watch, name="read deadlines")
        self._waiting[connection] = deadline
        self._span = deadline - trio.current_time()
        if deadline < self._wake and self._nap is not None:
            self._nap.cancel()

    def discard(self, connection: Expirable) -> None:
        self._waiting.pop(connection, None)

    async def _watch(self) -> None:
        while True:
            now = trio.current_time()
            if self._waiting:
                connection, deadline = min(self._waiting.items(), key=_deadline)
                if now >= deadline:
                    del self._waiting[connection]
                    try:
                        connection.expire()
                    except Exception:  # closing a socket raises nothing we expect
                        log.exception("deadline.expire_failed")
                    continue
                self._wake = deadline
            else:
                # Not woken by the next read (that would cost it a task switch).
                self._wake = now + self._span
            with trio.CancelScope(deadline=self._wake) as self._nap:
                await trio.sleep_forever()
            self._nap = None


def _deadline(item: tuple[Expirable, float]) -> float:
    return item[1]
