"""What the upstream's WebSocket frames tell the pool: rate limits, usage and errors.

Runs on every upstream frame, so frames are filtered by substring before any JSON parsing
(the text deltas, most of the traffic, are never parsed). An error frame that is the
account's fault (quota, throttle, auth, 5xx) ends the lease at once, so that the socket
Codex opens right after it already avoids the account.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.providers.base import Outcome, OutcomeKind, Provider, QuotaReading, TokenUsage
from trio_pool.providers.codex import CodexEvents, inband_failure
from trio_pool.providers.observe import parse_wanted
from trio_pool.providers.wire import as_str, dig

log = logging.getLogger(__name__)

# "connection limit reached (60 minutes)": Codex opens a new socket; no fault of the account.
CONNECTION_LIMIT = "websocket_connection_limit_reached"
# Close codes from the upstream that mean it failed (not that the conversation ended).
FAILED_CLOSES = frozenset({1011, 1012, 1013, 1014})


def error_frame_outcome(provider: Provider, payload: dict[str, Any], now: float) -> Outcome | None:
    """An ``error`` frame as an Outcome, classified like an HTTP answer when it has a status."""
    error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
    code = as_str(dig(error, "code")) or as_str(dig(error, "type"))
    if code == CONNECTION_LIMIT:
        return None
    status = payload.get("status")
    if isinstance(status, int) and not isinstance(status, bool):
        raw = payload.get("headers")
        fields = raw if isinstance(raw, dict) else {}
        headers = tuple((str(k).lower(), str(v)) for k, v in fields.items())
        body = json.dumps({"error": error}).encode()
        return provider.classify(status, headers, body, now)
    return inband_failure(error, now)


@attrs.define(eq=False)
class FrameWatcher:
    pool: Pool
    provider: Provider
    account: str
    report: Callable[[Outcome], None]
    # Where quota readings go: the proxy's observe (which also counts a user's share).
    observe: Callable[[QuotaReading, float], None]
    # Limit id -> limit name from the handshake's x-<id>-limit-name: a codex.rate_limits
    # frame of an extra family names it by id only (codex_limits.family_names).
    names: Mapping[str, str] = attrs.field(factory=dict)
    frames: int = 0
    failure: Outcome | None = None
    quota: QuotaReading | None = None
    usage: TokenUsage | None = None  # the socket's turns, summed for its ledger row

    def on_message(self, message: str | bytes) -> None:
        self.frames += 1
        if not isinstance(message, str):
            return
        payload = parse_wanted(message, CodexEvents.needles)
        if payload is None:
            return
        now = clock.now()
        if payload.get("type") == "error":
            outcome = error_frame_outcome(self.provider, payload, now)
            if outcome is not None:
                self._failed(outcome)
            return
        event = CodexEvents(now, self.names).on_payload(payload)
        if event is None:
            return
        if event.quota is not None:
            self.quota = event.quota
            self.observe(event.quota, now)
        if event.usage is not None:
            self.pool.record_usage(self.account, event.usage, now)
            self.usage = event.usage if self.usage is None else self.usage + event.usage
        if event.failure is not None:
            self._failed(event.failure)

    def _failed(self, outcome: Outcome) -> None:
        log.info(
            "ws.error_frame account=%s kind=%s status=%s reason=%s",
            self.account,
            outcome.kind.value,
            outcome.status,
            outcome.reason,
        )
        if outcome.kind.fails_over:
            # Ends the lease now: the next socket of this session must not land here.
            self.report(outcome)
        self.failure = self.failure or outcome

    def final(self, ended: tuple[int, str]) -> Outcome:
        """The lease's outcome when the socket closed (a no-op if an error frame ended it)."""
        code, who = ended
        if self.failure is not None:
            return self.failure
        if who == "upstream" and code in FAILED_CLOSES:
            return Outcome(OutcomeKind.TRANSIENT, None, f"upstream closed the socket with {code}")
        return Outcome(OutcomeKind.OK, 101, quota=self.quota)
