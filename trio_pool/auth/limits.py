"""Per-user limits (pure): requests per minute, requests in flight, share of window quota.

The share is measured from the quota readings themselves: when a user's request moves an
account's window from 40 % to 43 % used, those 3 points of one account (out of the
provider's N accounts) are the user's. A user's consumption of a window is what they moved
in the last ``window_s`` (the window's own length, 5 h or 7 d), as a share of the pool's
capacity (N accounts x 100 %). Readings come on most responses (Codex, Claude) or from the
usage polls (Gemini), so the share is approximate, and errs on the generous side.
"""

from __future__ import annotations

from collections import defaultdict, deque

import attrs

from trio_pool.auth.model import UserLimits

MINUTE_S = 60.0


@attrs.frozen
class Refusal:
    limit: str  # "rpm" | "streams" | "share"
    message: str
    retry_after: float


def _duration(seconds: float) -> str:
    seconds = max(1, round(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class UsageLimiter:
    def __init__(self) -> None:
        self._starts: dict[str, deque[float]] = defaultdict(deque)
        self._in_flight: dict[str, int] = defaultdict(int)
        # (user, provider, window name) -> [(at, share of the pool, window_s)]
        self._moved: dict[tuple[str, str, str], deque[tuple[float, float, float]]] = defaultdict(
            deque
        )

    def admit(
        self, user: str, provider: str, limits: UserLimits, now: float, *, streams: bool = True
    ) -> Refusal | None:
        """None: ``user`` may start a request now (call ``started``); else why not.

        ``streams=False`` for a turn on a WebSocket that already holds its stream slot.
        """
        starts = self._starts[user]
        while starts and starts[0] + MINUTE_S <= now:
            starts.popleft()
        if limits.rpm is not None and len(starts) >= limits.rpm:
            wait = starts[0] + MINUTE_S - now
            return Refusal(
                "rpm",
                f"user {user} reached the limit of {limits.rpm} requests per minute; "
                f"retry in {_duration(wait)}",
                wait,
            )
        if streams and limits.streams is not None and self._in_flight[user] >= limits.streams:
            return Refusal(
                "streams",
                f"user {user} reached the limit of {limits.streams} requests at once; "
                "retry when one of them ends",
                1.0,
            )
        if limits.share_pct is not None:
            for (who, prov, window), moved in self._moved.items():
                if who != user or prov != provider:
                    continue
                used, until = self._window_share(moved, now)
                if used * 100 >= limits.share_pct:
                    return Refusal(
                        "share",
                        f"user {user} used {used * 100:.1f} % of the pool's {provider} {window} "
                        f"quota, the limit is {limits.share_pct:g} %; "
                        f"retry in {_duration(until - now)}",
                        until - now,
                    )
        return None

    def started(self, user: str, now: float, *, request: bool = True) -> None:
        """A request (or a WebSocket: ``request=False``, its turns count one by one) began."""
        if request:
            self._starts[user].append(now)
        self._in_flight[user] += 1

    def turn_started(self, user: str, now: float) -> None:
        """One ``response.create`` on an open WebSocket: a request for the rpm limit."""
        self._starts[user].append(now)

    def ended(self, user: str) -> None:
        self._in_flight[user] = max(0, self._in_flight[user] - 1)

    def in_flight(self, user: str) -> int:
        return self._in_flight[user]

    def moved(
        self,
        user: str,
        provider: str,
        window: str,
        *,
        share: float,
        window_s: float,
        now: float,
    ) -> None:
        """``user``'s request moved ``window`` by ``share`` of the provider's pool capacity."""
        if share > 0:
            self._moved[(user, provider, window)].append((now, share, window_s))

    def share_used(self, user: str, provider: str, window: str, now: float) -> float:
        return self._window_share(self._moved[(user, provider, window)], now)[0]

    def forget(self, user: str) -> None:
        self._starts.pop(user, None)
        for key in [k for k in self._moved if k[0] == user]:
            del self._moved[key]

    @staticmethod
    def _window_share(moved: deque[tuple[float, float, float]], now: float) -> tuple[float, float]:
        """The share moved within each entry's window, and when the oldest entry leaves it."""
        while moved and moved[0][0] + moved[0][2] <= now:
            moved.popleft()
        total = sum(share for _, share, _ in moved)
        until = moved[0][0] + moved[0][2] if moved else now
        return total, until
