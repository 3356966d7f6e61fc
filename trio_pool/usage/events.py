"""What the request flow tells the world, and who listens: the live feed, the metrics, the ledger.

The proxy calls ``started`` when a request is routed, ``attempted`` after each upstream
attempt, ``limited`` when a user's own limit refuses it, and ``finished`` once, when it
ends (also after a client hang-up). Nothing here waits or touches the disk: the live feed
buffers per subscriber and the ledger's flusher writes rows later, so a slow page or a
slow disk never slows a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from trio_pool.usage.ledger import Tally
from trio_pool.usage.live import LiveFeed, start_of
from trio_pool.usage.metrics import Metrics

if TYPE_CHECKING:
    from trio_pool.usage.store import Ledger


class RequestEvents:
    """The fan-out of one process's request events."""

    def __init__(self, live: LiveFeed, metrics: Metrics, ledger: Ledger | None) -> None:
        self.live = live
        self.metrics = metrics
        self.ledger = ledger  # None: no ledger (turned off, or no state db)

    def started(self, tally: Tally, path: str) -> None:
        """The Live page's "start" event; the request's id is kept on the tally."""
        tally.id = self.live.next_id()
        tally.path = path
        if self.live.subscribers:  # a start matters only to an open Live page
            self.live.publish("start", start_of(tally))

    def attempted(self, provider: str, account: str, outcome: str, *, failover: bool) -> None:
        """One upstream attempt ended: answered, or failed over to the next account."""
        self.metrics.attempt(provider, account, outcome, failover=failover)

    def limited(self, user: str, limit: str) -> None:
        """A user's own limit refused a request (or a WebSocket turn)."""
        self.metrics.limited(user, limit)

    def finished(self, tally: Tally) -> None:
        """The request's row: to the Live page, the counters and the ledger's buffer."""
        row = tally.row(trio.current_time())
        self.live.ended(tally, row)
        self.metrics.request(row.provider, row.account, row.status)
        if row.account is not None and tally.usage is not None:
            self.metrics.tokens(row.provider, row.account, tally.usage)
        if 200 <= row.status < 300:
            self.metrics.stream_duration(row.provider, row.duration_ms / 1000)
        if self.ledger is not None:
            self.ledger.record(row)

    @property
    def ledger_dropped(self) -> int:
        return 0 if self.ledger is None else self.ledger.dropped
