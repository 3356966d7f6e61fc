"""Codex account files and calls: auth.json, the token refresh and the wham/usage poll
(protocols.md §1.3, §1.4, §1.6)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from trio_pool.errors import CredentialsError
from trio_pool.providers.base import (
    Credentials,
    PreparedRequest,
    QuotaReading,
    RefreshRequest,
    RefreshResult,
    RefreshVerdict,
)
from trio_pool.providers.codex_limits import family_scope, window
from trio_pool.providers.identity import codex_headers
from trio_pool.providers.jwt import decode_jwt_payload
from trio_pool.providers.tokens import (
    copy_document,
    refresh_answer,
    require_mapping,
    require_str,
)
from trio_pool.providers.wire import (
    as_float,
    as_str,
    dig,
    join_url,
    json_object,
    reading_from_windows,
    rfc3339,
)

CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
AUTH_CLAIM = "https://api.openai.com/auth"
PROFILE_CLAIM = "https://api.openai.com/profile"


def parse_credentials(document: Mapping[str, Any]) -> Credentials:
    document = require_mapping(document, "auth.json")
    tokens = document.get("tokens")
    if not isinstance(tokens, Mapping):
        raise CredentialsError(
            "tokens: missing or not an object (API-key logins cannot be pooled; use a ChatGPT login)"
        )
    access = require_str(tokens, "access_token", "tokens.access_token")
    id_claims = decode_jwt_payload(as_str(tokens.get("id_token")) or "") or {}
    access_claims = decode_jwt_payload(access) or {}
    account_id = (
        as_str(tokens.get("account_id"))
        or as_str(dig(id_claims, AUTH_CLAIM, "chatgpt_account_id"))
        or as_str(dig(access_claims, AUTH_CLAIM, "chatgpt_account_id"))
    )
    if account_id is None:
        raise CredentialsError("tokens.account_id: missing (and no chatgpt_account_id claim)")
    exp = as_float(access_claims.get("exp"))
    return Credentials(
        access_token=access,
        refresh_token=as_str(tokens.get("refresh_token")),
        expires_at=exp if exp is not None else as_float(id_claims.get("exp")),
        account_id=account_id,
        email=as_str(id_claims.get("email"))
        or as_str(dig(id_claims, PROFILE_CLAIM, "email"))
        or as_str(dig(access_claims, PROFILE_CLAIM, "email")),
        plan=as_str(dig(id_claims, AUTH_CLAIM, "chatgpt_plan_type"))
        or as_str(dig(access_claims, AUTH_CLAIM, "chatgpt_plan_type")),
    )


def refresh_request(credentials: Credentials, token_url: str) -> RefreshRequest:
    if not credentials.refresh_token:
        raise CredentialsError("tokens.refresh_token: missing, cannot refresh")
    body = {
        "client_id": CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": credentials.refresh_token,
    }
    # Codex's default client identity: auth.openai.com sits behind Cloudflare, which challenges
    # clients that do not say who they are (real-services.md §1).
    headers = (
        ("content-type", "application/json"),
        ("accept", "application/json"),
        *codex_headers(),
    )
    return RefreshRequest(token_url, headers, json.dumps(body).encode())


def refresh_result(
    status: int, body: bytes, document: Mapping[str, Any], now: float
) -> RefreshResult:
    answer = refresh_answer(status, body)
    if isinstance(answer, RefreshResult):
        if status == 401 and answer.verdict is RefreshVerdict.TRANSIENT:
            # Codex treats every 401 from its token endpoint as final (protocols.md §1.4).
            return RefreshResult(RefreshVerdict.PERMANENT, reason=answer.reason)
        return answer
    merged = copy_document(document)
    tokens = merged.get("tokens")
    tokens = dict(tokens) if isinstance(tokens, dict) else {}
    for key in ("id_token", "access_token", "refresh_token"):
        value = as_str(answer.get(key))
        if value is not None:
            tokens[key] = value
    merged["tokens"] = tokens
    merged["last_refresh"] = rfc3339(now)
    return RefreshResult(RefreshVerdict.OK, merged)


def usage_request(credentials: Credentials, upstreams: Mapping[str, str]) -> PreparedRequest:
    headers = [
        ("authorization", f"Bearer {credentials.access_token}"),
        ("accept", "application/json"),
        *codex_headers(),
    ]
    if credentials.account_id:
        headers.append(("chatgpt-account-id", credentials.account_id))
    url = join_url(upstreams["backend"], "/wham/usage")
    return PreparedRequest("GET", url, tuple(headers), b"")


def parse_usage(status: int, body: bytes, now: float) -> QuotaReading | None:
    if not 200 <= status < 300:
        return None
    payload = json_object(body)
    limits = dig(payload, "rate_limit")
    windows = []
    for slot in ("primary", "secondary"):
        data = dig(limits, f"{slot}_window")
        seconds = as_float(dig(data, "limit_window_seconds"))
        reset_at = as_float(dig(data, "reset_at"))
        after = as_float(dig(data, "reset_after_seconds"))
        if reset_at is None and after is not None:
            reset_at = now + after
        minutes = seconds / 60 if seconds is not None else None
        found = window(slot, dig(data, "used_percent"), minutes, reset_at)
        if found is not None:
            windows.append(found)
    exhausted = dig(limits, "limit_reached") is True
    extras = dig(payload, "additional_rate_limits")
    for extra in extras if isinstance(extras, list) else ():
        name = as_str(dig(extra, "limit_name"))
        family = family_scope(as_str(dig(extra, "metered_feature")) or name, name)
        for slot in ("primary", "secondary") if family is not None else ():
            data = dig(extra, "rate_limit", f"{slot}_window")
            seconds = as_float(dig(data, "limit_window_seconds"))
            minutes = seconds / 60 if seconds is not None else None
            found = window(
                slot, dig(data, "used_percent"), minutes, as_float(dig(data, "reset_at")), family
            )
            if found is not None:
                windows.append(found)
    return reading_from_windows(windows, as_str(dig(payload, "plan_type")), exhausted=exhausted)
