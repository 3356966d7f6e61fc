"""Claude account files and calls: .credentials.json, the token refresh and the
/api/oauth/usage poll (protocols.md §2.3, §2.4, §2.6)."""

from __future__ import annotations

import json
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
from trio_pool.providers.identity import anthropic_token_headers, claude_code_user_agent
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

CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
SCOPE = "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload"
SECTION = "claudeAiOauth"
DEFAULT_EXPIRES_IN_S = 3600.0  # when a refresh answer omits expires_in
MAX_EXPIRES_IN_S = 10 * 365 * 86400.0
WEEK_S = 7 * 86400.0
# /api/oauth/usage keys -> our window names, lengths and model scopes. 5h and 7d limit the
# account; the Opus and Sonnet weekly limits stop only their family (Claude Code names them
# "Opus limit" / "Sonnet limit"). 7d_oauth_apps is not a model: unverified what it stops,
# so it stays account-wide, as before.
USAGE_WINDOWS: dict[str, tuple[str, float, str | None]] = {
    "five_hour": ("5h", 5 * 3600.0, None),
    "seven_day": ("7d", WEEK_S, None),
    "seven_day_opus": ("7d_opus", WEEK_S, "opus"),
    "seven_day_sonnet": ("7d_sonnet", WEEK_S, "sonnet"),
    "seven_day_oauth_apps": ("7d_oauth_apps", WEEK_S, None),
}
ACCOUNT_WINDOWS = ("5h", "7d")  # at 100 % these mean the account is out


def parse_credentials(document: Mapping[str, Any]) -> Credentials:
    document = require_mapping(document, ".credentials.json")
    oauth = document.get(SECTION)
    if not isinstance(oauth, Mapping):
        raise CredentialsError(f"{SECTION}: missing or not an object (not a Claude.ai login?)")
    access = require_str(oauth, "accessToken", f"{SECTION}.accessToken")
    expires_ms = as_float(oauth.get("expiresAt"))
    return Credentials(
        access_token=access,
        refresh_token=as_str(oauth.get("refreshToken")),
        expires_at=expires_ms / 1000 if expires_ms is not None else None,
        plan=as_str(oauth.get("subscriptionType")),
    )


def refresh_request(credentials: Credentials, token_url: str) -> RefreshRequest:
    if not credentials.refresh_token:
        raise CredentialsError(f"{SECTION}.refreshToken: missing, cannot refresh")
    body = {
        "grant_type": "refresh_token",
        "refresh_token": credentials.refresh_token,
        "client_id": CLIENT_ID,
        "scope": SCOPE,
    }
    # As Claude Code's axios call: the endpoint answers 429 to a request with no User-Agent
    # (from a datacenter) and 429/404 to a claude-code/ or claude-cli/ one.
    headers = (("content-type", "application/json"), *anthropic_token_headers())
    return RefreshRequest(token_url, headers, json.dumps(body).encode())


def refresh_result(
    status: int, body: bytes, document: Mapping[str, Any], now: float
) -> RefreshResult:
    answer = refresh_answer(status, body)
    if isinstance(answer, RefreshResult):
        return answer
    merged = copy_document(document)
    oauth = merged.get(SECTION)
    oauth = dict(oauth) if isinstance(oauth, dict) else {}
    oauth["accessToken"] = answer["access_token"]
    # The token rotates; Claude Code keeps the old one when the answer has none.
    oauth["refreshToken"] = as_str(answer.get("refresh_token")) or oauth.get("refreshToken")
    expires_in = as_float(answer.get("expires_in"))
    # A nonsensical lifetime (none, negative, or past any real one) gets the default.
    sane = expires_in is not None and 0 < expires_in <= MAX_EXPIRES_IN_S
    expires_in = expires_in if sane and expires_in is not None else DEFAULT_EXPIRES_IN_S
    oauth["expiresAt"] = int((now + expires_in) * 1000)
    scope = as_str(answer.get("scope"))
    if scope is not None:
        oauth["scopes"] = scope.split()
    merged[SECTION] = oauth
    return RefreshResult(RefreshVerdict.OK, merged)


def usage_request(credentials: Credentials, upstreams: Mapping[str, str]) -> PreparedRequest:
    headers = (
        ("authorization", f"Bearer {credentials.access_token}"),
        ("anthropic-beta", "oauth-2025-04-20"),
        ("accept", "application/json"),
        ("user-agent", claude_code_user_agent()),
    )
    return PreparedRequest("GET", join_url(upstreams["upstream"], "/api/oauth/usage"), headers, b"")


def parse_usage(status: int, body: bytes, now: float) -> QuotaReading | None:
    if not 200 <= status < 300:
        return None
    payload = json_object(body)
    if payload is None:
        return None
    windows: dict[str, QuotaWindow] = {}
    for key, (name, length_s, scope) in USAGE_WINDOWS.items():
        data = payload.get(key)
        used = as_float(data.get("utilization")) if isinstance(data, dict) else None
        if used is None or not isinstance(data, dict):
            continue
        reset_at = parse_timestamp(data.get("resets_at"))
        windows[name] = QuotaWindow(name, clamp_fraction(used / 100), length_s, reset_at, scope)
    for window in scoped_limits(payload.get("limits")):
        windows[window.name] = window  # the newer list wins over the older keys
    if not windows:
        return None
    found = tuple(windows.values())
    full = [w for w in found if w.name in ACCOUNT_WINDOWS and w.used >= 1.0]
    resets = [w.resets_at for w in full if w.resets_at is not None]
    return QuotaReading(found, None, bool(full), max(resets) if resets else None)


def scoped_limits(limits: Any) -> list[QuotaWindow]:
    """The model-scoped weekly rows of the usage answer's newer ``limits[]`` (kind
    ``weekly_scoped``, ``percent`` 0-100, ``resets_at``, ``scope.model.display_name``).

    The other kinds (session, weekly_all) repeat five_hour / seven_day. Field names are from
    one real sample (real-services.md §2): the display name's first word ("Opus",
    "Sonnet 4.5") is taken as the model family."""
    windows = []
    for item in limits if isinstance(limits, list) else ():
        if not isinstance(item, dict) or item.get("kind") != "weekly_scoped":
            continue
        display = as_str(dig(item, "scope", "model", "display_name")) or ""
        family = next((w for w in display.lower().split() if w.isalpha()), None)
        used = as_float(item.get("percent"))
        if family is None or used is None:
            continue
        reset_at = parse_timestamp(item.get("resets_at"))
        windows.append(
            QuotaWindow(f"7d_{family}", clamp_fraction(used / 100), WEEK_S, reset_at, family)
        )
    return windows
