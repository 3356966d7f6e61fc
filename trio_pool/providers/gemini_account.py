"""Gemini account files and calls: oauth_creds.json, the token refresh, the
retrieveUserQuota poll (protocols.md §3.1-§3.6). The Code Assist set-up (tier, project,
onboarding) is in ``gemini_setup``."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

from trio_pool.errors import CredentialsError
from trio_pool.providers.base import (
    Credentials,
    PreparedRequest,
    QuotaReading,
    QuotaWindow,
    RefreshRequest,
    RefreshResult,
    RefreshVerdict,
)
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
    clamp_fraction,
    dig,
    join_url,
    json_object,
    parse_timestamp,
)

# The Gemini CLI's installed-app OAuth client; its secret is public by design.
CLIENT_ID = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com"
CLIENT_SECRET = "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"
DEFAULT_EXPIRES_IN_S = 3599.0
CLIENT_METADATA = {
    "ideType": "IDE_UNSPECIFIED",
    "platform": "PLATFORM_UNSPECIFIED",
    "pluginType": "GEMINI",
}


def project_of(value: Any) -> str | None:
    """A project id given as a string or as ``{"id": ...}``."""
    return as_str(value) or as_str(dig(value, "id"))


def parse_credentials(document: Mapping[str, Any]) -> Credentials:
    document = require_mapping(document, "oauth_creds.json")
    access = require_str(document, "access_token", "access_token")
    expiry_ms = as_float(document.get("expiry_date"))
    claims = decode_jwt_payload(as_str(document.get("id_token")) or "") or {}
    return Credentials(
        access_token=access,
        refresh_token=as_str(document.get("refresh_token")),
        expires_at=expiry_ms / 1000 if expiry_ms is not None else None,
        email=as_str(claims.get("email")),
        # Not a CLI field: a pool file may name the account's project to skip the look-up.
        project=project_of(document.get("project_id"))
        or project_of(document.get("cloudaicompanionProject")),
    )


def refresh_request(credentials: Credentials, token_url: str) -> RefreshRequest:
    if not credentials.refresh_token:
        raise CredentialsError("refresh_token: missing, cannot refresh")
    form = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "refresh_token",
        "refresh_token": credentials.refresh_token,
    }
    headers = (
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", "application/json"),
    )
    return RefreshRequest(token_url, headers, urllib.parse.urlencode(form).encode())


def refresh_result(
    status: int, body: bytes, document: Mapping[str, Any], now: float
) -> RefreshResult:
    answer = refresh_answer(status, body)
    if isinstance(answer, RefreshResult):
        return answer
    merged = copy_document(document)
    # Google does not rotate refresh tokens: the old one stays unless a new one came.
    for key in ("access_token", "refresh_token", "id_token", "scope", "token_type"):
        value = as_str(answer.get(key))
        if value is not None:
            merged[key] = value
    expires_in = as_float(answer.get("expires_in"))
    expires_in = expires_in if expires_in is not None and expires_in > 0 else DEFAULT_EXPIRES_IN_S
    merged["expiry_date"] = int((now + expires_in) * 1000)
    return RefreshResult(RefreshVerdict.OK, merged)


def _post(
    credentials: Credentials, upstreams: Mapping[str, str], method: str, body: Any
) -> PreparedRequest:
    headers = (
        ("authorization", f"Bearer {credentials.access_token}"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
    )
    url = join_url(upstreams["upstream"], f"/v1internal:{method}")
    return PreparedRequest("POST", url, headers, json.dumps(body).encode())


def usage_request(credentials: Credentials, upstreams: Mapping[str, str]) -> PreparedRequest | None:
    """retrieveUserQuota needs the account's project: None until it is known."""
    if not credentials.project:
        return None
    return _post(credentials, upstreams, "retrieveUserQuota", {"project": credentials.project})


def parse_usage(status: int, body: bytes, now: float) -> QuotaReading | None:
    """One window per model: a model's bucket running dry does not stop the others."""
    if not 200 <= status < 300:
        return None
    buckets = dig(json_object(body), "buckets")
    windows: dict[str, QuotaWindow] = {}
    for bucket in buckets if isinstance(buckets, list) else ():
        model = as_str(dig(bucket, "modelId"))
        remaining = as_float(dig(bucket, "remainingFraction"))
        if model is None or remaining is None:
            continue
        reset_at = parse_timestamp(dig(bucket, "resetTime"))
        found = QuotaWindow(model, clamp_fraction(1 - remaining), None, reset_at, model)
        if model not in windows or found.used > windows[model].used:
            windows[model] = found
    return QuotaReading(tuple(windows.values())) if windows else None
