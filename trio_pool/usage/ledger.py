"""The usage ledger's rows, hourly rollups and the bounded buffer between requests and disk.

Pure: no trio, no files, no clock. A request ends by appending one ``LedgerRow`` to the
``LedgerBuffer`` (never waiting for the disk); the store's flusher takes batches from it.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from collections.abc import Iterable, Sequence

import attrs

from trio_pool.logs import redact
from trio_pool.providers.base import TokenUsage

HOUR_S = 3600
BUFFER_ROWS = 10_000  # about a few MB; beyond it the disk has stalled: rows are dropped
KEY_HASH_CHARS = 16  # 64 bits of sha256: enough to group a conversation, not to reverse it
REASON_CHARS = 160
MODEL_CHARS = 100
# The "model" key of a JSON body, found without parsing the whole body (it can be MBs).
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,100})"')
_MODEL_SCAN_BYTES = 64 * 1024
# A Gemini route names the model in the path: .../models/gemini-2.5-pro:streamGenerateContent
_PATH_MODEL = re.compile(r"/models/([A-Za-z0-9._\-]{1,100})")


@attrs.frozen
class LedgerRow:
    """One proxied request, as the ledger keeps it. No column holds a secret."""

    at: float  # unix seconds when the request arrived
    provider: str
    account: str | None  # the account that answered (or the last one tried)
    model: str | None
    conversation: str | None  # hash_key() of the conversation key, never the key
    status: int  # what the client got
    attempts: int
    failures: tuple[str, ...]  # "account: reason" per failed attempt, redacted
    ttfb_ms: float | None  # to the upstream's response head of the answering attempt
    duration_ms: float
    usage: TokenUsage = attrs.field(factory=TokenUsage)
    bytes: int = 0
    user: str | None = None  # local mode: no users
    # The API the client spoke (Route.client_format): "messages" booked on a Codex account
    # is Claude Code served by Codex (translation.md §0.5).
    client_format: str | None = None


@attrs.frozen
class RollupKey:
    provider: str
    account: str  # "" when no account was chosen
    model: str  # "" when unknown
    user: str  # "" in local mode
    hour: int  # unix seconds at the start of the hour


@attrs.frozen
class RollupTotals:
    requests: int = 0
    errors: int = 0  # status >= 400
    failovers: int = 0  # failed attempts before an answer that reached the client
    usage: TokenUsage = attrs.field(factory=TokenUsage)
    bytes: int = 0

    def __add__(self, other: RollupTotals) -> RollupTotals:
        return RollupTotals(
            self.requests + other.requests,
            self.errors + other.errors,
            self.failovers + other.failovers,
            self.usage + other.usage,
            self.bytes + other.bytes,
        )


def hash_key(key: str | None) -> str | None:
    if not key:
        return None
    return hashlib.sha256(key.encode()).hexdigest()[:KEY_HASH_CHARS]


def model_of(body: bytes, path: str) -> str | None:
    """The request's model: the body's "model" key if present early, else the route's path."""
    found = _MODEL.search(body, 0, _MODEL_SCAN_BYTES)
    if found is not None:
        return found.group(1).decode("utf-8", "replace")[:MODEL_CHARS]
    in_path = _PATH_MODEL.search(path)
    return in_path.group(1) if in_path is not None else None


def failure_text(account: str, reason: str) -> str:
    return redact(f"{account}: {reason}")[:REASON_CHARS]


def hour_of(at: float) -> int:
    return int(at // HOUR_S) * HOUR_S


def rollup_key(row: LedgerRow) -> RollupKey:
    return RollupKey(
        row.provider, row.account or "", row.model or "", row.user or "", hour_of(row.at)
    )


def failovers_of(row: LedgerRow) -> int:
    """Failed attempts the client never saw: those before an answer it got."""
    return max(0, row.attempts - 1) if row.status < 400 else 0


def rollup(rows: Iterable[LedgerRow]) -> dict[RollupKey, RollupTotals]:
    """The rows' sums per (provider, account, model, user, hour)."""
    totals: dict[RollupKey, RollupTotals] = {}
    for row in rows:
        key = rollup_key(row)
        add = RollupTotals(1, int(row.status >= 400), failovers_of(row), row.usage, row.bytes)
        totals[key] = totals.get(key, RollupTotals()) + add
    return totals


class LedgerBuffer:
    """Rows waiting for the disk; bounded so that a stalled disk costs rows, never a stream."""

    def __init__(self, limit: int = BUFFER_ROWS) -> None:
        self.limit = limit
        self._rows: deque[LedgerRow] = deque()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, row: LedgerRow) -> bool:
        """Keep ``row``; False (and counted) when the buffer is full."""
        if len(self._rows) >= self.limit:
            self.dropped += 1
            return False
        self._rows.append(row)
        return True

    def take(self, most: int) -> list[LedgerRow]:
        return [self._rows.popleft() for _ in range(min(most, len(self._rows)))]

    def put_back(self, rows: Sequence[LedgerRow]) -> None:
        """Rows a failed write returned, ahead of the newer ones (beyond the limit: dropped)."""
        room = max(0, self.limit - len(self._rows))
        self.dropped += max(0, len(rows) - room)
        self._rows.extendleft(reversed(rows[:room]))


@attrs.define(eq=False)
class Tally:
    """What one request gathers on its way, turned into its LedgerRow when it ends."""

    provider: str
    at: float  # unix seconds at arrival
    started: float  # the monotonic clock at arrival
    model: str | None = None
    conversation: str | None = None
    account: str | None = None
    status: int = 0  # 0 until the client got a response head
    attempts: int = 0
    failures: list[str] = attrs.field(factory=list)
    ttfb_s: float | None = None
    usage: TokenUsage | None = None
    bytes: int = 0
    user: str | None = None  # shared mode: whose key the request carried
    id: int = 0  # the Live page's id for the request
    path: str = ""
    client_format: str | None = None  # see LedgerRow.client_format

    def row(self, ended: float) -> LedgerRow:
        """The row, ``ended`` on the monotonic clock. A client that left before any answer
        gets 499 (nginx's "client closed request")."""
        return LedgerRow(
            at=self.at,
            provider=self.provider,
            account=self.account,
            model=self.model,
            conversation=self.conversation,
            status=self.status or 499,
            attempts=self.attempts,
            failures=tuple(self.failures),
            ttfb_ms=None if self.ttfb_s is None else round(self.ttfb_s * 1000, 1),
            duration_ms=round((ended - self.started) * 1000, 1),
            usage=self.usage or TokenUsage(),
            bytes=self.bytes,
            user=self.user,
            client_format=self.client_format,
        )
