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

Readers name a limit, not a deadline: the deadline is now + the limit. Each limit keeps its
readers in the order they came, which is the order of their deadlines, so the task finds
the next one due at the front of each list: with a thousand idle keep-alive connections,
each expiry costs one look per limit, not a scan of the thousand. With nothing to watch,
the task sleeps for as long as the last limit registered (a reader registered meanwhile
with that limit is due later); a reader due earlier than the task's wake-up wakes it.
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


def close_under_waiters(sock: trio.socket.SocketType) -> None:
    """Close ``sock`` at once; a task waiting on it wakes with ClosedResourceError (how an
    ``Expirable`` ends the wait its deadline caught)."""
    trio.lowlevel.notify_closing(sock)
    sock.close()


class ReadDeadlines:
    """Connections waiting on a read, each with its deadline."""

    def __init__(self) -> None:
        # limit -> {connection: deadline}, in the order the connections came
        self._by_limit: dict[float, dict[Expirable, float]] = {}
        self._span = 60.0  # the last limit registered
        self._token: trio.lowlevel.TrioToken | None = None  # the run whose task watches
        self._wake = math.inf  # when the watcher looks next
        self._nap: trio.CancelScope | None = None  # the watcher's sleep until then

    def add(self, connection: Expirable, limit_s: float) -> None:
        """Watch ``connection`` until ``discard``; it expires ``limit_s`` from now."""
        token = trio.lowlevel.current_trio_token()
        if token is not self._token:
            # First use in this trio run (a system task: it lives as long as the run).
            # Whatever an earlier run left waiting is no concern of this one.
            self._token, self._wake, self._nap = token, math.inf, None
            self._by_limit.clear()
            trio.lowlevel.spawn_system_task(self._watch, name="read deadlines")
        deadline = trio.current_time() + limit_s
        waiting = self._by_limit.get(limit_s)
        if waiting is None:
            waiting = self._by_limit[limit_s] = {}
        waiting[connection] = deadline
        self._span = limit_s
        if deadline < self._wake and self._nap is not None:
            self._nap.cancel()

    def discard(self, connection: Expirable) -> None:
        for waiting in self._by_limit.values():
            if waiting.pop(connection, None) is not None:
                return

    @property
    def watched(self) -> int:
        """How many connections wait under a deadline now."""
        return sum(map(len, self._by_limit.values()))

    async def _watch(self) -> None:
        while True:
            now = trio.current_time()
            wake = now + self._span  # with nothing to watch: not woken by the next reader
            for limit_s, waiting in list(self._by_limit.items()):
                while waiting:
                    connection = next(iter(waiting))
                    deadline = waiting[connection]
                    if deadline > now:
                        wake = min(wake, deadline)
                        break
                    del waiting[connection]
                    try:
                        connection.expire()
                    except Exception:  # closing a socket raises nothing we expect
                        log.exception("deadline.expire_failed")
                if not waiting:
                    del self._by_limit[limit_s]  # limits that come and go (tests) leave nothing
            self._wake = wake
            with trio.CancelScope(deadline=wake) as self._nap:
                await trio.sleep_forever()
            self._nap = None
