"""Each provider's OAuth login, as data: the authorize URL, the code exchange and the
credential document the CLI itself would write (protocols.md §1.5, §2.5, §3.5). Pure.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from typing import Any

import attrs

from trio_pool.config import Config
from trio_pool.errors import LoginError
from trio_pool.login.pkce import Pkce, with_query
from trio_pool.providers import claude_account, codex_account, gemini_account
from trio_pool.providers.base import ProviderName
from trio_pool.providers.identity import (
    anthropic_token_headers,
    claude_code_user_agent,
    codex_headers,
)
from trio_pool.providers.jwt import decode_jwt_payload
from trio_pool.providers.tokens import refresh_error_code
from trio_pool.providers.wire import as_float, as_str, dig, json_object, rfc3339

CODEX_SCOPE = "openid profile email offline_access api.connectors.read api.connectors.invoke"
CLAUDE_SCOPE = (
    "org:create_api_key user:profile user:inference user:sessions:claude_code "
    "user:mcp_servers user:file_upload"
)
GEMINI_SCOPE = (
    "https://www.googleapis.com/auth/cloud-platform "
    "https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile"
)
# Claude's organization_type -> the subscriptionType Claude Code stores.
CLAUDE_PLANS = {
    "claude_max": "max",
    "claude_pro": "pro",
    "claude_team": "team",
    "claude_enterprise": "enterprise",
}
JSON_HEADERS = (("content-type", "application/json"), ("accept", "application/json"))
FORM_HEADERS = (
    ("content-type", "application/x-www-form-urlencoded"),
    ("accept", "application/json"),
)
# Each CLI's own identity on its login calls (see providers/identity.py): Claude Code's code
# exchange is an axios call, Codex's login server uses its default client.
CLAUDE_TOKEN_HEADERS = (("content-type", "application/json"), *anthropic_token_headers())
CODEX_JSON_HEADERS = (*JSON_HEADERS, *codex_headers())
CODEX_FORM_HEADERS = (*FORM_HEADERS, *codex_headers())
CLAUDE_PROFILE_USER_AGENT = ("user-agent", claude_code_user_agent())


@attrs.frozen
class TokenCall:
    """One POST to a token (or device) endpoint."""

    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = attrs.field(repr=False)


def authorize_url(
    provider: ProviderName,
    config: Config,
    *,
    redirect_uri: str,
    state: str,
    pkce: Pkce | None,
) -> str:
    """The URL the user opens; ``pkce`` is None only for the Gemini CLI's browser branch."""
    params: dict[str, str]
    if provider == "codex":
        assert pkce is not None
        params = {
            "response_type": "code",
            "client_id": codex_account.CLIENT_ID,
            "redirect_uri": redirect_uri,
            "scope": CODEX_SCOPE,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "id_token_add_organizations": "true",
            "codex_cli_simplified_flow": "true",
            "state": state,
            "originator": "codex_cli_rs",
        }
        return with_query(config.codex.authorize_url, params)
    if provider == "claude":
        assert pkce is not None
        params = {
            "code": "true",
            "client_id": claude_account.CLIENT_ID,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": CLAUDE_SCOPE,
            "code_challenge": pkce.challenge,
            "code_challenge_method": "S256",
            "state": state,
        }
        return with_query(config.claude.authorize_url, params)
    params = {
        "client_id": gemini_account.CLIENT_ID,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": GEMINI_SCOPE,
        "access_type": "offline",
        "state": state,
    }
    if pkce is not None:
        params |= {"code_challenge": pkce.challenge, "code_challenge_method": "S256"}
    return with_query(config.gemini.authorize_url, params)


def exchange_call(
    provider: ProviderName,
    config: Config,
    *,
    code: str,
    redirect_uri: str,
    verifier: str | None,
    state: str | None = None,
) -> TokenCall:
    """The authorization-code exchange: form-encoded for Codex and Google, JSON for Claude."""
    if provider == "claude":
        body: dict[str, str] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": claude_account.CLIENT_ID,
            "code_verifier": verifier or "",
        }
        if state is not None:
            body["state"] = state
        return TokenCall(config.claude.token_url, CLAUDE_TOKEN_HEADERS, json.dumps(body).encode())
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if provider == "codex":
        form["client_id"] = codex_account.CLIENT_ID
        url = config.codex.token_url
    else:
        form["client_id"] = gemini_account.CLIENT_ID
        form["client_secret"] = gemini_account.CLIENT_SECRET
        url = config.gemini.token_url
    if verifier is not None:
        form["code_verifier"] = verifier
    headers = CODEX_FORM_HEADERS if provider == "codex" else FORM_HEADERS
    return TokenCall(url, headers, urllib.parse.urlencode(form).encode())


def token_answer(status: int, body: bytes, what: str = "token endpoint") -> dict[str, Any]:
    """The JSON object of a successful answer, else LoginError naming only the error code."""
    payload = json_object(body)
    if 200 <= status < 300 and payload is not None:
        return payload
    code = refresh_error_code(payload)
    shown = f" {code}" if code and code.replace("_", "").isalnum() and len(code) < 64 else ""
    hint = "; the code may have expired or been used: run the login again" if code else ""
    raise LoginError(f"the {what} refused the login: {status}{shown}{hint}")


def login_document(provider: ProviderName, answer: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The credential file the CLI would write after this token answer."""
    access = as_str(answer.get("access_token"))
    refresh = as_str(answer.get("refresh_token"))
    if access is None or refresh is None:
        raise LoginError("the token endpoint answered without an access and a refresh token")
    if provider == "codex":
        id_token = as_str(answer.get("id_token")) or ""
        claims = decode_jwt_payload(id_token) or {}
        account_id = as_str(dig(claims, codex_account.AUTH_CLAIM, "chatgpt_account_id"))
        if account_id is None:
            raise LoginError("the id_token names no ChatGPT account (chatgpt_account_id)")
        return {
            "auth_mode": "chatgpt",
            "OPENAI_API_KEY": None,
            "tokens": {
                "id_token": id_token,
                "access_token": access,
                "refresh_token": refresh,
                "account_id": account_id,
            },
            "last_refresh": rfc3339(now),
        }
    expires_in = as_float(answer.get("expires_in")) or 3600.0
    expires_ms = int((now + expires_in) * 1000)
    if provider == "claude":
        document: dict[str, Any] = {
            "claudeAiOauth": {
                "accessToken": access,
                "refreshToken": refresh,
                "expiresAt": expires_ms,
                "scopes": (as_str(answer.get("scope")) or "").split(),
                "subscriptionType": None,
                "rateLimitTier": None,
            }
        }
        # Opaque tokens name no account: keep what the answer said, in ~/.claude.json's shape.
        account = {
            "accountUuid": as_str(dig(answer, "account", "uuid")),
            "emailAddress": as_str(dig(answer, "account", "email_address")),
            "organizationUuid": as_str(dig(answer, "organization", "uuid")),
        }
        if any(account.values()):
            document["oauthAccount"] = account
        return document
    document = {
        "access_token": access,
        "refresh_token": refresh,
        "scope": as_str(answer.get("scope")) or GEMINI_SCOPE,
        "token_type": as_str(answer.get("token_type")) or "Bearer",
        "expiry_date": expires_ms,
    }
    google_id_token = as_str(answer.get("id_token"))
    if google_id_token is not None:
        document["id_token"] = google_id_token
    return document


def apply_claude_profile(document: dict[str, Any], profile: Mapping[str, Any]) -> None:
    """Fill the plan fields from GET /api/oauth/profile, as Claude Code does after login."""
    oauth = document["claudeAiOauth"]
    kind = as_str(dig(profile, "organization", "organization_type"))
    if kind is not None:
        oauth["subscriptionType"] = CLAUDE_PLANS.get(kind, kind.removeprefix("claude_"))
    oauth["rateLimitTier"] = as_str(dig(profile, "organization", "rate_limit_tier")) or oauth.get(
        "rateLimitTier"
    )
    email = as_str(dig(profile, "account", "email"))
    if email is not None:
        account = document.setdefault("oauthAccount", {})
        account.setdefault("emailAddress", email)
        account["accountUuid"] = account.get("accountUuid") or as_str(
            dig(profile, "account", "uuid")
        )


def split_pasted_code(provider: ProviderName, pasted: str, state: str) -> str:
    """The code from what the user pasted: Claude shows ``code#state``, Google the code alone."""
    text = pasted.strip()
    if not text:
        raise LoginError("no code was pasted")
    if "code=" in text:  # a whole redirect URL was pasted
        params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(text).query))
        text = params.get("code", "")
        if params.get("state") not in (None, state):
            raise LoginError(_MISMATCH)
        return text
    if provider == "claude":
        code, sep, pasted_state = text.partition("#")
        if not sep or pasted_state != state:
            raise LoginError(_MISMATCH)
        return code
    return text


_MISMATCH = (
    "state mismatch: the pasted code belongs to a different login attempt; run the login again"
)
