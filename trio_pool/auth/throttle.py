"""Brute-force protection for the friend code, the admin password and key sign-in (pure).

Failures are counted per client address and in total: a client is locked out after
PER_CLIENT failures within WINDOW_S, and everyone after GLOBAL failures within
GLOBAL_WINDOW_S (a guesser with many addresses still gets only a few hundred tries a day).
"""

from __future__ import annotations

from collections import deque

PER_CLIENT = 5
WINDOW_S = 15 * 60.0
GLOBAL = 50
GLOBAL_WINDOW_S = 3600.0
MAX_CLIENTS = 10_000  # beyond this the oldest clients are forgotten (memory stays bounded)


class AttemptThrottle:
    def __init__(
        self,
        *,
        per_client: int = PER_CLIENT,
        window_s: float = WINDOW_S,
        total: int = GLOBAL,
        total_window_s: float = GLOBAL_WINDOW_S,
    ) -> None:
        self.per_client, self.window_s = per_client, window_s
        self.total, self.total_window_s = total, total_window_s
        self._clients: dict[str, deque[float]] = {}
        self._all: deque[float] = deque()

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        self._expire(now)
        waits = []
        mine = self._clients.get(client)
        if mine is not None and len(mine) >= self.per_client:
            waits.append(mine[0] + self.window_s - now)
        if len(self._all) >= self.total:
            waits.append(self._all[0] + self.total_window_s - now)
        return max(waits) if waits else None

    def failed(self, client: str, now: float) -> None:
        if client not in self._clients and len(self._clients) >= MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]
        self._clients.setdefault(client, deque()).append(now)
        self._all.append(now)

    def succeeded(self, client: str) -> None:
        self._clients.pop(client, None)

    def _expire(self, now: float) -> None:
        while self._all and self._all[0] + self.total_window_s <= now:
            self._all.popleft()
        for client in [c for c, times in self._clients.items() if times[-1] + self.window_s <= now]:
            del self._clients[client]
        for times in self._clients.values():
            while times and times[0] + self.window_s <= now:
                times.popleft()
