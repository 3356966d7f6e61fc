"""Simulated provider accounts: tokens, quota windows and counters (pure: ``now`` is an input).

A window holds ``capacity`` units (a request, or a token when ``quota_unit`` is "token") over
``length_s`` seconds. Use grows the used amount; once it reaches the capacity the provider
answers its real 429 until the window's reset time, when the window empties and a new one
starts at the next use (like Claude's 5-hour window, which starts at the first message).
"""

from __future__ import annotations

import re
from collections import deque
from typing import Literal

import attrs

from trio_pool.server.messages import Headers
from trio_pool.testing.faults import FaultKind, SimConfig

Provider = Literal["codex", "claude", "gemini"]
QuotaUnit = Literal["request", "token"]
RefreshCheck = Literal["current", "reused", "revoked"]


@attrs.define(eq=False)
class SimWindow:
    """One quota window of one account."""

    name: str  # "5h", "7d", "minute", "daily": a label for humans and usage polls
    length_s: float
    capacity: float  # units that fit in one window
    used: float = 0.0
    resets_at: float | None = None  # unix seconds; None: starts at the first use
    # None: the window limits every request of the account. Else only requests for this
    # model (an exact id such as "gemini-2.5-pro") or family (a word of the model's name,
    # such as "opus"), as Gemini's per-model buckets and Claude's weekly Opus limit do.
    model: str | None = None
    # Codex: the id of the extra limit family a model window belongs to ("codex_bengalfox";
    # default codex_<model>). A family's windows (primary first) are metered apart from the
    # account's own (testing/codex_limits.py).
    limit_id: str | None = None

    def limits(self, model: str | None) -> bool:
        if self.model is None:
            return True
        if model is None:
            return False
        name = model.lower().removeprefix("models/")
        return name == self.model or self.model in re.split(r"[^a-z0-9.]+", name)

    def roll(self, now: float) -> None:
        """Start a fresh window if the reset time has passed (or none was set yet)."""
        if self.resets_at is None:
            self.resets_at = now + self.length_s
        elif now >= self.resets_at:
            self.used = 0.0
            self.resets_at = now + self.length_s

    @property
    def fraction(self) -> float:
        """Used share of the window, 0..1."""
        if self.capacity <= 0:
            return 1.0
        return min(1.0, self.used / self.capacity)

    @property
    def full(self) -> bool:
        return self.used >= self.capacity

    def reset_at(self, now: float) -> float:
        return self.resets_at if self.resets_at is not None else now + self.length_s

    def reset_after_s(self, now: float) -> float:
        return max(0.0, self.reset_at(now) - now)


@attrs.define(eq=False)
class SimAccount:
    """One simulated subscription account, with what the tests want to assert on."""

    name: str
    provider: Provider
    access_token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)
    expires_at: float  # access-token expiry, unix seconds
    plan: str = "plus"
    email: str = ""
    account_id: str = ""  # Codex ChatGPT-Account-ID; Claude account uuid
    project: str = ""  # Gemini cloudaicompanionProject
    # Gemini Code Assist set-up: not onboarded yet (loadCodeAssist has no currentTier until
    # onboardUser's operation is done), and a verification Google asks for (403
    # VALIDATION_REQUIRED with this link until cleared).
    onboarded: bool = True
    validation_url: str | None = None
    windows: list[SimWindow] = attrs.field(factory=list)
    quota_unit: QuotaUnit = "request"
    config: SimConfig | None = None  # overrides the simulator's config for this account
    # Claude: extra usage is on. A subscription request that is not Claude Code's (no billing
    # block, not Haiku) is then served and billed to it (counted in extra_usage_requests);
    # with it off, such a request gets the real 400 (testing/claude_rules.py).
    extra_usage: bool = True
    # Every refresh token handed out before the current one (single-use rotation).
    retired_refresh_tokens: set[str] = attrs.field(factory=set, repr=False)
    # Forced answers for the next requests, oldest first.
    forced: deque[FaultKind] = attrs.field(factory=deque)
    # Forced statuses for the next refresh calls (e.g. 500, 429), oldest first.
    forced_refresh: deque[int] = attrs.field(factory=deque)
    refresh_retry_after_s: int = 1  # the Retry-After of a forced 429 refresh answer
    # Counters for tests.
    requests: int = 0  # authenticated API requests that reached this account
    generations: int = 0  # requests that were answered with a model reply
    refreshes: int = 0  # refresh calls presenting one of this account's refresh tokens
    rotations: int = 0  # refresh calls that issued new tokens
    reuses: int = 0  # refresh calls presenting a spent refresh token
    revoked: bool = False  # the token family was ended (revoke_on_reuse)
    extra_usage_requests: int = 0  # Claude requests billed as extra usage
    last_path: str = ""
    last_headers: Headers = attrs.field(default=(), repr=False)
    last_body: bytes = attrs.field(default=b"", repr=False)

    @property
    def key(self) -> str:
        """``provider/name``, the key used in config files and pool directories."""
        return f"{self.provider}/{self.name}"

    def expired(self, now: float) -> bool:
        return now >= self.expires_at

    # -- quota ---------------------------------------------------------------------------

    def roll(self, now: float) -> None:
        for window in self.windows:
            window.roll(now)

    def blocking_window(self, now: float, model: str | None = None) -> SimWindow | None:
        """The full window that keeps a request for ``model`` blocked longest, or None."""
        self.roll(now)
        full = [w for w in self.windows if w.full and w.limits(model)]
        if not full:
            return None
        return max(full, key=lambda w: w.reset_at(now))

    def binding_window(self, now: float, model: str | None = None) -> SimWindow | None:
        """The most used window limiting ``model`` (the one a provider reports as
        representative)."""
        self.roll(now)
        windows = [w for w in self.windows if w.limits(model)]
        if not windows:
            return None
        return max(windows, key=lambda w: (w.fraction, w.reset_at(now)))

    def consume(self, units: float, now: float, model: str | None = None) -> None:
        self.roll(now)
        for window in self.windows:
            if window.limits(model):
                window.used += units

    def units_for(self, input_tokens: int, output_tokens: int) -> float:
        if self.quota_unit == "token":
            return float(input_tokens + output_tokens)
        return 1.0

    # -- faults --------------------------------------------------------------------------

    def force(self, kind: FaultKind, count: int = 1) -> None:
        self.forced.extend([kind] * count)

    def take_forced(self) -> FaultKind | None:
        return self.forced.popleft() if self.forced else None

    # -- tokens --------------------------------------------------------------------------

    def check_refresh(self, presented: str) -> RefreshCheck:
        if self.revoked:
            return "reused" if presented in self.retired_refresh_tokens else "revoked"
        if presented == self.refresh_token:
            return "current"
        if presented in self.retired_refresh_tokens:
            return "reused"
        return "revoked"

    def rotate(self, *, access_token: str, refresh_token: str | None, expires_at: float) -> None:
        """Install new tokens; the old refresh token becomes single-use spent when rotated."""
        self.access_token = access_token
        self.expires_at = expires_at
        if refresh_token is not None and refresh_token != self.refresh_token:
            self.retired_refresh_tokens.add(self.refresh_token)
            self.refresh_token = refresh_token

    def record(self, path: str, headers: Headers, body: bytes) -> None:
        self.requests += 1
        self.last_path = path
        self.last_headers = headers
        self.last_body = body

    def last_header(self, name: str) -> str | None:
        for key, value in self.last_headers:
            if key == name:
                return value
        return None
