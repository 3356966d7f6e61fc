"""Upstream errors in the client's own shape, status and ``retry-after`` (translation.md §6).

Only the pool's final answer is translated: account 429s are failed over while any account
has headroom. Every translated 429 carries an integer ``retry-after`` of at least 1
(Claude Code retries a 429 with backoff; Codex gives up at once).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import attrs

from trio_pool.errors import ClientProtocolError
from trio_pool.translate.fields import as_dict, as_number, as_str, dig
from trio_pool.translate.sse import Event, kind_of

# Used when nothing says when to retry (S2 defaults an unknown reset to 60 s too).
DEFAULT_RETRY_AFTER_S = 60
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)

RATE_CODES = frozenset({"usage_limit_reached", "rate_limit_exceeded", "insufficient_quota"})
OVERLOAD_CODES = frozenset({"server_is_overloaded", "slow_down"})
INVALID_CODES = frozenset(
    {"cyber_policy", "invalid_request", "invalid_prompt", "invalid_request_error"}
)
STATUS_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
}
# Events a Codex or Claude stream sends before any content: the shell holds the translated
# output until the first other event, so a failure right after them can still fail over
# (CPA buffers up to 16 of them, codex_executor_terminal.go).
HANDSHAKE_EVENTS = frozenset(
    {
        "response.created",
        "response.in_progress",
        "codex.rate_limits",
        "codex.response.metadata",
        "response.metadata",
        "message_start",
        "ping",
    }
)


class TranslationError(ClientProtocolError):
    """The client's request cannot be translated (not the shape its format requires)."""


@attrs.frozen
class JsonReply:
    """A JSON answer for the client: status, headers (content-type, retry-after), body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: dict[str, Any]


def is_handshake_event(event: Event) -> bool:
    return kind_of(event) in HANDSHAKE_EVENTS


def is_retryable_failure(event: Event) -> bool:
    """A terminal upstream failure another account may not have (rate limit, overload)."""
    kind, data = kind_of(event), event[1]
    if kind == "response.failed":
        code = _code(dig(data, "response", "error"))
        return code in RATE_CODES | OVERLOAD_CODES
    if kind == "error":
        error = as_dict(data).get("error", data)
        return _code(error) in RATE_CODES | OVERLOAD_CODES | {
            "overloaded_error",
            "rate_limit_error",
        }
    return False


def _code(error: Any) -> str:
    return as_str(dig(error, "code")) or as_str(dig(error, "type"))


def retry_after_s(error: Any, headers: Mapping[str, str], now_unix: float) -> int:
    """Seconds until a retry may work: ``resets_at`` - now, ``resets_in_seconds``, the
    ``retry-after`` header, "try again in Xs" in the message, else the default."""
    seconds = None
    resets_at = as_number(dig(error, "resets_at"))
    if resets_at is not None:
        seconds = resets_at - now_unix
    if seconds is None:
        seconds = as_number(dig(error, "resets_in_seconds"))
    if seconds is None:
        header = (headers.get("retry-after") or "").strip()
        seconds = float(header) if header.replace(".", "", 1).isdigit() else None
    if seconds is None:
        match = _TRY_AGAIN.search(as_str(dig(error, "message")))
        if match:
            seconds = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    if seconds is None:
        seconds = DEFAULT_RETRY_AFTER_S
    return max(1, math.ceil(seconds))


def _codex_error(body: Any, status: int) -> tuple[str, str, dict[str, Any]]:
    error = as_dict(as_dict(body).get("error"))
    code = _code(error)
    message = as_str(error.get("message")) or as_str(dig(body, "detail"))
    return code, message or f"upstream error {status}", error


def codex_error_kind(code: str, status: int) -> tuple[int, str]:
    """A Codex error as (HTTP status, Anthropic error type)."""
    if code == "usage_not_included":
        return 403, "permission_error"  # the plan has no Codex: no retry helps [prop]
    if status == 429 or code in RATE_CODES:
        return 429, "rate_limit_error"
    if code in OVERLOAD_CODES or status >= 500:
        return 529, "overloaded_error"  # Anthropic's status for "overloaded"
    if code == "context_length_exceeded" or code in INVALID_CODES or status == 400:
        return 400, "invalid_request_error"
    if status in STATUS_TYPES:
        return status, STATUS_TYPES[status]
    return (status if status >= 400 else 500), "api_error"


def codex_to_messages_error(
    status: int, body: Any, headers: Mapping[str, str], now_unix: float
) -> JsonReply:
    """A Codex error response as Claude Code sees an Anthropic one."""
    code, message, error = _codex_error(body, status)
    status, kind = codex_error_kind(code, status)
    if code == "context_length_exceeded":
        # [?] the text Claude Code matches to start compaction
        message = f"prompt is too long: {message}"
    sent = [("content-type", "application/json")]
    if status == 429:
        sent.append(("retry-after", str(retry_after_s(error, headers, now_unix))))
    body_out = {"type": "error", "error": {"type": kind, "message": message}}
    return JsonReply(status, tuple(sent), body_out)


def codex_to_chat_error(
    status: int, body: Any, headers: Mapping[str, str], now_unix: float
) -> JsonReply:
    code, message, error = _codex_error(body, status)
    status, kind = codex_error_kind(code, status)
    sent = [("content-type", "application/json")]
    if status == 429:
        sent.append(("retry-after", str(retry_after_s(error, headers, now_unix))))
        chat_code = "rate_limit_exceeded"
    elif status == 529:
        status, kind, chat_code = 503, "server_error", code or "server_is_overloaded"
    else:
        chat_code = code or kind
    return JsonReply(status, tuple(sent), chat_error_body(message, kind, chat_code))


def chat_error_body(message: str, kind: str, code: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def codex_stream_error(error: Any) -> dict[str, Any]:
    """A Codex in-stream failure (``response.failed``'s error) as an Anthropic ``error``."""
    code = _code(error)
    message = as_str(dig(error, "message")) or code or "the upstream response failed"
    _, kind = codex_error_kind(code, 200)
    if code == "context_length_exceeded":
        message = f"prompt is too long: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}


def claude_stream_code(error: Any) -> str:
    """An Anthropic error as the Codex ``response.failed`` code Codex reacts to."""
    kind = as_str(dig(error, "type"))
    message = as_str(dig(error, "message")).lower()
    if kind == "overloaded_error":
        return "server_is_overloaded"
    if kind == "rate_limit_error":
        return "rate_limit_exceeded"
    if "prompt is too long" in message or ("context" in message and "too long" in message):
        return "context_length_exceeded"
    if kind == "invalid_request_error":
        return "invalid_prompt"
    return "server_error"


def claude_to_responses_error(
    status: int, body: Any, headers: Mapping[str, str], now_unix: float
) -> JsonReply:
    """A Claude error response as Codex CLI sees a Codex one (§6, [prop] codes)."""
    error = as_dict(as_dict(body).get("error"))
    message = as_str(error.get("message")) or f"upstream error {status}"
    sent = [("content-type", "application/json")]
    unified = (headers.get("anthropic-ratelimit-unified-status") or "").strip()
    if status == 429 and unified == "rejected":
        reset = as_number(_float_header(headers, "anthropic-ratelimit-unified-reset"))
        wait = retry_after_s({"resets_at": reset} if reset else {}, headers, now_unix)
        sent.append(("retry-after", str(wait)))
        payload: dict[str, Any] = {"type": "usage_limit_reached", "code": "usage_limit_reached"}
        payload["message"] = message
        if reset is not None:
            payload["resets_at"] = int(reset)
        payload["resets_in_seconds"] = wait
        return JsonReply(429, tuple(sent), {"error": payload})
    if status == 429:
        sent.append(("retry-after", str(retry_after_s({}, headers, now_unix))))
        code = "rate_limit_exceeded"
    elif status == 529 or as_str(error.get("type")) == "overloaded_error":
        status, code = 503, "server_is_overloaded"  # Codex retries 5xx, not 429
    elif status >= 500:
        code = "server_error"
    elif "prompt is too long" in message.lower():
        code = "context_length_exceeded"
    else:
        code = as_str(error.get("type")) or STATUS_TYPES.get(status, "invalid_request_error")
    return JsonReply(
        status, tuple(sent), {"error": {"type": code, "code": code, "message": message}}
    )


def pool_quota_for_codex(message: str, retry_after_s: float | None, now_unix: float) -> JsonReply:
    """The pool's own 429 (every Claude account out of quota, or cooling) for Codex CLI:
    Codex's ``usage_limit_reached`` with the reset (T36), which Codex shows as "You've hit
    your usage limit" with the time to try again; a bare 429 type only says it failed."""
    wait = max(1, math.ceil(retry_after_s)) if retry_after_s else DEFAULT_RETRY_AFTER_S
    payload = {
        "type": "usage_limit_reached",
        "code": "usage_limit_reached",
        "message": message,
        "resets_at": int(now_unix + wait),
        "resets_in_seconds": wait,
    }
    headers = (("content-type", "application/json"), ("retry-after", str(wait)))
    return JsonReply(429, headers, {"error": payload})


def claude_to_chat_error(
    status: int, body: Any, headers: Mapping[str, str], now_unix: float
) -> JsonReply:
    error = as_dict(as_dict(body).get("error"))
    message = as_str(error.get("message")) or f"upstream error {status}"
    kind = as_str(error.get("type")) or "api_error"
    sent = [("content-type", "application/json")]
    if status == 429:
        sent.append(("retry-after", str(retry_after_s({}, headers, now_unix))))
        return JsonReply(
            429, tuple(sent), chat_error_body(message, "rate_limit_error", "rate_limit_exceeded")
        )
    if status == 529 or kind == "overloaded_error":
        return JsonReply(
            503, tuple(sent), chat_error_body(message, "server_error", "server_is_overloaded")
        )
    return JsonReply(status, tuple(sent), chat_error_body(message, kind, kind))


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float((headers.get(name) or "").strip())
    except ValueError:
        return None
