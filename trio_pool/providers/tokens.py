"""Shared pieces of credential parsing and token refresh (field checks, failure verdicts)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from trio_pool.errors import CredentialsError
from trio_pool.providers.base import RefreshResult, RefreshVerdict
from trio_pool.providers.wire import as_float, as_str, header_map, json_object
from trio_pool.server.messages import Headers

# Token-endpoint error codes after which only a new login helps (design.md §3.2).
PERMANENT_REFRESH_CODES = frozenset(
    {
        "invalid_grant",
        "refresh_token_expired",
        "refresh_token_reused",
        "refresh_token_invalidated",
    }
)


_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")  # OAuth / OpenAI error codes are snake_case
MAX_RETRY_AFTER_S = 86400.0  # a longer hint is not a backoff: cap it


def token_retry_after_s(headers: Headers) -> float | None:
    """How long a token endpoint asked us to wait (``Retry-After`` seconds, or the
    ``Retry-After-Ms`` Anthropic also sends), or None when it did not say."""
    fields = header_map(headers)
    seconds = as_float(fields.get("retry-after"))
    millis = as_float(fields.get("retry-after-ms"))
    if millis is not None and millis >= 0:
        seconds = max(seconds or 0.0, millis / 1000)
    if seconds is None or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def require_mapping(document: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise CredentialsError(f"{where}: missing or not a JSON object")
    return document


def require_str(section: Mapping[str, Any], key: str, where: str) -> str:
    """A non-empty string field; the error names the field, never its value."""
    value = as_str(section.get(key))
    if value is None:
        raise CredentialsError(f"{where}: missing or not a non-empty string")
    return value


def copy_document(document: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy to merge new tokens into, so the caller's document is never changed."""
    return copy.deepcopy(dict(document))


def refresh_error_code(payload: Any) -> str | None:
    """The error code of a token-endpoint answer: OAuth ``{"error": "invalid_grant"}`` or
    OpenAI ``{"error": {"code": ..., "type": ...}}``."""
    if not isinstance(payload, dict):
        return None
    error = payload.get("error")
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        return as_str(error.get("code")) or as_str(error.get("type"))
    return None


def refresh_answer(status: int, body: bytes) -> dict[str, Any] | RefreshResult:
    """The token endpoint's JSON object on success, else the failure's verdict."""
    payload = json_object(body)
    if 200 <= status < 300:
        if payload is None:
            return RefreshResult(
                RefreshVerdict.TRANSIENT, reason="token endpoint answer is not JSON"
            )
        if as_str(payload.get("access_token")) is None:
            return RefreshResult(
                RefreshVerdict.TRANSIENT, reason="token endpoint answer has no access_token"
            )
        return payload
    code = refresh_error_code(payload)
    # Only a code-like value goes into the reason: an odd answer could echo a token.
    shown = code if code and _CODE.fullmatch(code) else None
    reason = f"token endpoint answered {status}" + (f" {shown}" if shown else "")
    if code in PERMANENT_REFRESH_CODES:
        return RefreshResult(RefreshVerdict.PERMANENT, reason=reason)
    return RefreshResult(RefreshVerdict.TRANSIENT, reason=reason)
