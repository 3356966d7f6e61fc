"""Small helpers for reading provider payloads and headers, shared by the three providers.

Provider JSON is parsed by hand and tolerates anything: every reader here returns None (or
a default) on a wrong shape instead of raising, because the providers change their payloads
every release and a malformed answer must never crash the proxy.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from trio_pool.logs import redact
from trio_pool.providers.base import Outcome, OutcomeKind, QuotaReading, QuotaWindow
from trio_pool.server.messages import HOP_BY_HOP, Headers, end_to_end

# What a client may send to authenticate itself; the account's credential replaces all of it.
CLIENT_CREDENTIAL_HEADERS = (
    "authorization",
    "x-api-key",
    "chatgpt-account-id",
    "cookie",
    "x-goog-api-key",
    # trio-pool's own caller credentials (shared mode): never forwarded upstream.
    "x-trio-pool-key",
    "x-trio-pool-internal",
    "x-trio-pool-user",
    "host",
    "content-length",
)


def json_value(body: bytes | str) -> Any:
    """The JSON value of ``body``, or None when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def json_object(body: bytes | str) -> dict[str, Any] | None:
    value = json_value(body)
    return value if isinstance(value, dict) else None


def dig(value: Any, *keys: str) -> Any:
    """``value[k1][k2]...``, or None as soon as a level is missing or not an object."""
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def as_str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def as_float(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string; booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def as_int(value: Any) -> int:
    """A non-negative token count; anything else counts as 0."""
    number = as_float(value)
    return int(number) if number is not None and number >= 0 and number < 2**63 else 0


def parse_timestamp(value: Any) -> float | None:
    """Unix seconds from an ISO-8601 / RFC 3339 string (``Z`` or an offset) or a number."""
    if not isinstance(value, str):
        return as_float(value)
    text = value.strip()
    if not text:
        return None
    number = as_float(text)
    if number is not None:
        return number
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, ValueError):
        return None


def rfc3339(now: float) -> str:
    """``now`` as RFC 3339 UTC with microseconds and ``Z``, the way Codex writes last_refresh."""
    return datetime.fromtimestamp(now, UTC).isoformat().replace("+00:00", "Z")


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s)\s*$")


def parse_duration(value: Any) -> float | None:
    """Seconds from a protobuf-style duration string: "56s", "0.539s", "539.477544ms"."""
    if not isinstance(value, str):
        return None
    match = _DURATION.match(value)
    if match is None:
        return None
    amount = float(match.group(1)) / (1000 if match.group(2) == "ms" else 1)
    return amount if amount <= 366 * 86400 else None  # a year or more is not a reset delay


def header_map(headers: Headers) -> dict[str, str]:
    """The first value of each header, by lower-case name."""
    result = dict(headers)
    if len(result) == len(headers):
        return result  # no name twice (the usual head): the same map, built in one C call
    result = {}
    for key, value in headers:
        result.setdefault(key, value)
    return result


def retry_after_at(headers: Mapping[str, str], now: float) -> float | None:
    """``Retry-After`` (seconds form) as a unix time, when present and sane."""
    seconds = as_float(headers.get("retry-after"))
    if seconds is None or seconds < 0 or seconds > 7 * 86400:
        return None
    return now + seconds


# What never goes upstream from the client: hop-by-hop fields and the client's credentials.
_NOT_FORWARDED = HOP_BY_HOP | frozenset(CLIENT_CREDENTIAL_HEADERS)


def forwardable(headers: Headers) -> list[tuple[str, str]]:
    """The client's headers minus hop-by-hop fields (and those ``Connection`` names) and
    every credential it sent, in one pass (every request comes through here)."""
    return list(end_to_end(headers, _NOT_FORWARDED))


def join_url(base: str, suffix: str, query: str = "") -> str:
    """``base`` + ``suffix`` (no doubled slash) with the client's query kept."""
    url = base.rstrip("/") + suffix
    return f"{url}?{query}" if query else url


def websocket_url(url: str) -> str:
    if url.startswith("https://"):
        return "wss://" + url.removeprefix("https://")
    if url.startswith("http://"):
        return "ws://" + url.removeprefix("http://")
    return url


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def clamp_fraction(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def reading_from_windows(
    windows: list[QuotaWindow], plan: str | None = None, *, exhausted: bool = False
) -> QuotaReading | None:
    """A QuotaReading; an account-wide window at 100 % makes it exhausted until that window
    resets (a model window at 100 % stops only its model)."""
    full = [w for w in windows if w.used >= 1.0 and w.scope is None]
    exhausted = exhausted or bool(full)
    main = [w for w in windows if w.scope is None]
    resets = [w.resets_at for w in (full or main) if w.resets_at is not None]
    if not windows and plan is None and not exhausted:
        return None
    # Every full window must have reset before the account is usable: the latest one binds.
    resets_at = max(resets) if exhausted and resets else None
    return QuotaReading(tuple(windows), plan, exhausted, resets_at)


def short_reason(*parts: str | None) -> str:
    """A one-line reason from the upstream's error code and message, secrets masked."""
    text = ": ".join(p.strip() for p in parts if p and p.strip())
    text = redact(" ".join(text.split()))
    return text if len(text) <= 200 else text[:199] + "…"


def cloudflare_block(status: int, headers: Headers) -> bool:
    """A Cloudflare challenge or block page in front of the API, not the API's own answer.

    Common from VPS and datacenter addresses (real-services.md §1): it says nothing about the
    token or the account, so it must never spend a refresh (openclaw#95150 made the same
    call). ``cf-mitigated`` marks a challenge; an HTML 403 is Cloudflare's block page."""
    fields = header_map(headers)
    if "cf-mitigated" in fields:
        return True
    html = fields.get("content-type", "").strip().lower().startswith("text/html")
    return status == 403 and html


def cloudflare_outcome(status: int, headers: Headers) -> Outcome | None:
    """TRANSIENT for a Cloudflare page (fail over, short backoff, no refresh), else None."""
    if not cloudflare_block(status, headers):
        return None
    mitigated = header_map(headers).get("cf-mitigated", "block")
    return Outcome(OutcomeKind.TRANSIENT, status, f"Cloudflare {mitigated} (HTTP {status})")


def status_outcome(
    status: int,
    reason: str,
    quota: QuotaReading | None = None,
    retry_at: float | None = None,
) -> Outcome:
    """The outcome of a non-2xx status that carried no provider-specific signal."""
    if status == 401:
        kind = OutcomeKind.AUTH
    elif status == 403:
        kind = OutcomeKind.FORBIDDEN
    elif status in (429, 529):
        kind = OutcomeKind.THROTTLED
    elif status == 408 or 500 <= status <= 599:
        kind = OutcomeKind.TRANSIENT
    else:
        kind = OutcomeKind.CLIENT_ERROR
    return Outcome(kind, status, reason or f"HTTP {status}", quota, retry_at)
