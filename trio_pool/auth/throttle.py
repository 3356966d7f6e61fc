"""Brute-force protection for the friend code, the admin password and key sign-in (pure).

Each secret has its own AttemptThrottle, so a guesser of one cannot lock out the others
(the admin still signs in while someone tries friend codes). Failures are counted per client
address: a client is locked out after PER_CLIENT failures within WINDOW_S. Sign-up alone
also has a global lock, GLOBAL failures within GLOBAL_WINDOW_S from anywhere (a guesser
with many addresses still gets only a few hundred codes a day); the password and key
throttles have none, or a guesser could lock the admin out from every address.

``SignupRate`` caps successful sign-ups per hour (a friend code that leaked cannot mint
users without end).
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
        total: int | None = GLOBAL,
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
        if self.total is not None and len(self._all) >= self.total:
            waits.append(self._all[0] + self.total_window_s - now)
        return max(waits) if waits else None

    def failed(self, client: str, now: float) -> None:
        """A failed attempt (or one about to be checked: count it before the wait)."""
        if client not in self._clients and len(self._clients) >= MAX_CLIENTS:
            del self._clients[next(iter(self._clients))]
        self._clients.setdefault(client, deque()).append(now)
        if self.total is not None:
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


class SignupRate:
    """At most ``per_hour`` successful sign-ups in any rolling hour (all addresses)."""

    def __init__(self, per_hour: int, window_s: float = 3600.0) -> None:
        self.per_hour, self.window_s = per_hour, window_s
        self._times: deque[float] = deque()

    def retry_after(self, now: float) -> float | None:
        while self._times and self._times[0] + self.window_s <= now:
            self._times.popleft()
        if len(self._times) < self.per_hour:
            return None
        return self._times[0] + self.window_s - now

    def record(self, now: float) -> None:
        self._times.append(now)

    def adopt(self, times: list[float], *, read_at: float) -> None:
        """Every host's sign-ups as the shared store listed them (sorted) at ``read_at``,
        plus this host's own recorded since then (multi-host mode)."""
        later = [t for t in self._times if t > read_at]
        self._times = deque(sorted([*times, *later]))
