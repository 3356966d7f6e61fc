"""Simulated OAuth token endpoints: Codex ``/oauth/token`` (JSON refresh, form code
exchange), Claude ``/v1/oauth/token`` (JSON) and Google ``/token`` (form).

Codex and Claude refresh tokens are single-use: the old one is retired on every refresh and
presenting it again gets the real permanent error (Codex 401 ``refresh_token_reused``,
Claude 400 ``invalid_grant``). Google keeps its refresh token and returns none.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import trio

from trio_pool.server.connection import Exchange
from trio_pool.testing import issue, wire
from trio_pool.testing.accounts import Provider, SimAccount
from trio_pool.testing.identity import anthropic_token_refusal, codex_identity_refusal, refuse
from trio_pool.testing.state import SimState

CODEX_REUSED: dict[str, Any] = {
    "error": {
        "message": "Your refresh token has already been used to generate a new access token. Please try signing in again.",
        "type": "invalid_request_error",
        "code": "refresh_token_reused",
    }
}
CODEX_INVALIDATED: dict[str, Any] = {
    "error": {
        "message": "Your refresh token has been invalidated. Please try signing in again.",
        "type": "invalid_request_error",
        "code": "refresh_token_invalidated",
    }
}


def _oauth_error(code: str, description: str) -> dict[str, str]:
    return {"error": code, "error_description": description}


async def _params(ex: Exchange) -> dict[str, str]:
    body = await wire.read_body(ex)
    content_type = (ex.head.get("content-type") or "").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    return {k: str(v) for k, v in wire.parse_json(body).items() if v is not None}


async def _answer_delay(state: SimState, account: SimAccount) -> None:
    """After issuing: a slow answer (the rotation has happened, whatever the caller does)."""
    delay = state.config_for(account).token_delay_s
    if delay > 0:
        await trio.sleep(delay)


def _issue(state: SimState, account: SimAccount, *, rotate_refresh: bool) -> tuple[float, float]:
    """New tokens for ``account``: returns (now, lifetime_s)."""
    now = state.now()
    lifetime = state.token_lifetime_s or issue.TOKEN_LIFETIME_S[account.provider]
    account.rotations += 1
    expires_at = now + lifetime
    state.rotate(
        account,
        access_token=issue.new_access_token(account, now, expires_at),
        refresh_token=issue.new_refresh_token(account.provider) if rotate_refresh else None,
        expires_at=expires_at,
    )
    return now, lifetime


async def _grant(
    state: SimState,
    ex: Exchange,
    provider: Provider,
    params: dict[str, str],
    *,
    refused: Callable[[str], tuple[int, Any]],
) -> SimAccount | None:
    """The account a grant names, or None after answering the refusal ``refused(reason)``."""
    grant = params.get("grant_type")
    if grant == "authorization_code":
        account = state.redeem_login_code(params.get("code"))
        if account is None or account.provider != provider:
            await wire.respond_json(ex, *refused("bad_code"))
            return None
        return account
    if grant != "refresh_token":
        await wire.respond_json(
            ex,
            400,
            _oauth_error("unsupported_grant_type", f"grant_type {grant!r} is not supported"),
        )
        return None
    presented = params.get("refresh_token", "")
    account = state.by_refresh(provider, presented)
    if account is None:
        await wire.respond_json(ex, *refused("revoked"))
        return None
    account.refreshes += 1
    if account.forced_refresh:
        status = account.forced_refresh.popleft()
        retry_after = str(account.refresh_retry_after_s)
        headers = [("retry-after", retry_after)] if status == 429 else []
        await wire.respond_json(
            ex, status, _oauth_error("temporarily_unavailable", "Simulated failure."), headers
        )
        return None
    check = account.check_refresh(presented)
    if check == "reused":
        account.reuses += 1
        if state.revoke_on_reuse:
            state.revoke(account)
    if check != "current":
        await wire.respond_json(ex, *refused(check))
        return None
    return account


async def handle_codex(state: SimState, ex: Exchange) -> None:
    params = await _params(ex)
    if await refuse(ex, codex_identity_refusal(ex.head)):
        return
    if params.get("client_id") != issue.CODEX_CLIENT_ID:
        body = {
            "error": {
                "message": "Invalid client.",
                "type": "invalid_request_error",
                "code": "invalid_client",
            }
        }
        await wire.respond_json(ex, 401, body)
        return

    def refused(reason: str) -> tuple[int, Any]:
        if reason == "reused":
            return 401, CODEX_REUSED
        if reason == "bad_code":
            return 400, _oauth_error("invalid_grant", "Invalid authorization code.")
        return 401, CODEX_INVALIDATED

    account = await _grant(state, ex, "codex", params, refused=refused)
    if account is None:
        return
    now, lifetime = _issue(state, account, rotate_refresh=True)
    if state.token_delay_s:
        await trio.sleep(state.token_delay_s)  # rotated already: only the answer is slow
    answer = {
        "id_token": issue.codex_id_token(account, now),
        "access_token": account.access_token,
        "refresh_token": account.refresh_token,
        "expires_in": int(lifetime),
        "token_type": "Bearer",
        "scope": "openid profile email offline_access",
    }
    await _answer_delay(state, account)
    await wire.respond_json(ex, 200, answer)


async def handle_claude(state: SimState, ex: Exchange) -> None:
    params = await _params(ex)
    if await refuse(ex, anthropic_token_refusal(ex.head)):
        return
    if params.get("client_id") != issue.CLAUDE_CLIENT_ID:
        await wire.respond_json(
            ex, 401, _oauth_error("invalid_client", "Client authentication failed.")
        )
        return

    def refused(reason: str) -> tuple[int, Any]:
        return 400, _oauth_error(
            "invalid_grant",
            "Invalid 'refresh_token' or 'code'"
            if reason != "reused"
            else "Refresh token has already been used",
        )

    account = await _grant(state, ex, "claude", params, refused=refused)
    if account is None:
        return
    _now, lifetime = _issue(state, account, rotate_refresh=True)
    if state.token_delay_s:
        await trio.sleep(state.token_delay_s)
    body = {
        "token_type": "Bearer",
        "access_token": account.access_token,
        "expires_in": int(lifetime),
        "refresh_token": account.refresh_token,
        "scope": " ".join(issue.CLAUDE_SCOPES),
        "token_uuid": str(uuid.uuid4()),
        "refresh_token_expires_in": 28 * 86400,
        "organization": {
            "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, account.email)),
            "name": f"{account.email}'s Organization",
        },
        "account": {"uuid": account.account_id, "email_address": account.email},
    }
    await _answer_delay(state, account)
    await wire.respond_json(ex, 200, body)


async def handle_gemini(state: SimState, ex: Exchange) -> None:
    params = await _params(ex)
    if params.get("client_id") != issue.GEMINI_CLIENT_ID:
        await wire.respond_json(
            ex, 401, _oauth_error("invalid_client", "The OAuth client was not found.")
        )
        return
    if params.get("client_secret") != issue.GEMINI_CLIENT_SECRET:
        await wire.respond_json(ex, 401, _oauth_error("invalid_client", "Unauthorized"))
        return

    def refused(reason: str) -> tuple[int, Any]:
        return 400, _oauth_error(
            "invalid_grant",
            "Token has been expired or revoked."
            if reason != "bad_code"
            else "Malformed auth code.",
        )

    login = params.get("grant_type") == "authorization_code"
    account = await _grant(state, ex, "gemini", params, refused=refused)
    if account is None:
        return
    # Google refresh tokens do not rotate; a new login issues a new one.
    now, lifetime = _issue(state, account, rotate_refresh=login)
    body: dict[str, Any] = {
        "access_token": account.access_token,
        "expires_in": int(lifetime),
        "scope": issue.GEMINI_SCOPE,
        "token_type": "Bearer",
        "id_token": issue.google_id_token(account, now),
    }
    if login:
        body["refresh_token"] = account.refresh_token
    await _answer_delay(state, account)
    await wire.respond_json(ex, 200, body)
