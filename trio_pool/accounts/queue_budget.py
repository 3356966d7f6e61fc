"""A global cap on requests waiting for an account (M5): how many, and how many body bytes.

A request waits (design.md §3.4) holding its whole body in memory; without a cap, forty
4 MiB requests during a pool-wide cooldown held 160 MiB for the whole wait. Past the cap a
request is answered at once (429 with Retry-After, naming the full queue) instead of joining.
Pure bookkeeping; the request flow enters and leaves.
"""

from __future__ import annotations

import attrs


@attrs.define
class QueueBudget:
    max_requests: int
    max_bytes: int
    requests: int = 0
    bytes: int = 0

    def try_enter(self, size: int) -> bool:
        """Take a place for a request holding ``size`` body bytes; False when full."""
        if self.requests >= self.max_requests or self.bytes + size > self.max_bytes:
            return False
        self.requests += 1
        self.bytes += size
        return True

    def leave(self, size: int) -> None:
        self.requests = max(0, self.requests - 1)
        self.bytes = max(0, self.bytes - size)

    def refusal(self) -> str:
        return (
            f"trio-pool's wait queue is full ({self.requests} requests, "
            f"{self.bytes // 1024} KiB of bodies waiting for an account)"
        )
