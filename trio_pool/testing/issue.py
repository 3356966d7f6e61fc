"""Minting fake tokens in each provider's real shape, and building simulated accounts.

Codex tokens are unsigned JWTs (header.payload.signature with a dummy signature): Codex only
base64url-decodes the payload (protocols.md §1.3). Claude tokens are opaque
``sk-ant-oat01-``/``sk-ant-ort01-`` strings; Google ones ``ya29.``/``1//``.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from typing import Any

from trio_pool.testing.accounts import Provider, QuotaUnit, SimAccount, SimWindow
from trio_pool.testing.faults import SimConfig

CODEX_CLIENT_ID = "app_EMoamEEZ73f0CkXaXp7hrann"
CLAUDE_CLIENT_ID = "9d1c250a-e61b-44d9-88ed-5944d1962f5e"
GEMINI_CLIENT_ID = "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com"
GEMINI_CLIENT_SECRET = "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"

# Access-token lifetimes: Codex JWTs live days, Claude 28 800 s, Google 3 599 s.
TOKEN_LIFETIME_S: dict[Provider, float] = {
    "codex": 10 * 86400.0,
    "claude": 28800.0,
    "gemini": 3599.0,
}

CLAUDE_SCOPES = (
    "user:inference",
    "user:profile",
    "user:sessions:claude_code",
    "user:mcp_servers",
    "user:file_upload",
)
GEMINI_SCOPE = (
    "https://www.googleapis.com/auth/cloud-platform "
    "https://www.googleapis.com/auth/userinfo.email "
    "https://www.googleapis.com/auth/userinfo.profile openid"
)
OPENAI_AUTH = "https://api.openai.com/auth"
OPENAI_PROFILE = "https://api.openai.com/profile"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_jwt(claims: dict[str, Any]) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": "trio-pool-sim"}
    parts = [json.dumps(header), json.dumps(claims, separators=(",", ":"))]
    encoded = [_b64url(p.encode()) for p in parts]
    return ".".join([*encoded, _b64url(b"trio-pool-simulator-signature")])


def decode_jwt_payload(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload))
    return claims


def _codex_auth_claims(account: SimAccount) -> dict[str, Any]:
    user_id = f"user-{account.account_id.removeprefix('acct-')}"
    return {
        "chatgpt_account_id": account.account_id,
        "chatgpt_account_user_id": f"{user_id}__{account.account_id}",
        "chatgpt_compute_residency": "no_constraint",
        "chatgpt_plan_type": account.plan,
        "chatgpt_user_id": user_id,
        "user_id": user_id,
    }


def codex_id_token(account: SimAccount, now: float) -> str:
    """The id_token Codex parses for email, plan, user and account ids (protocols.md §1.3)."""
    return encode_jwt(
        {
            "iss": "https://auth.openai.com",
            "aud": [CODEX_CLIENT_ID],
            "sub": f"auth0|{account.account_id}",
            "iat": int(now),
            "exp": int(account.expires_at),
            "auth_time": int(now),
            "jti": str(uuid.uuid4()),
            "email": account.email,
            "email_verified": True,
            OPENAI_AUTH: _codex_auth_claims(account),
        }
    )


def codex_access_token(account: SimAccount, now: float, expires_at: float) -> str:
    return encode_jwt(
        {
            "iss": "https://auth.openai.com",
            "aud": ["https://api.openai.com/v1"],
            "client_id": CODEX_CLIENT_ID,
            "sub": f"auth0|{account.account_id}",
            "iat": int(now),
            "nbf": int(now),
            "exp": int(expires_at),
            "jti": str(uuid.uuid4()),
            "session_id": f"authsess_{secrets.token_hex(8)}",
            "scp": ["openid", "profile", "email", "offline_access"],
            OPENAI_AUTH: _codex_auth_claims(account),
            OPENAI_PROFILE: {"email": account.email, "email_verified": True},
        }
    )


def new_access_token(account: SimAccount, now: float, expires_at: float) -> str:
    if account.provider == "codex":
        return codex_access_token(account, now, expires_at)
    if account.provider == "claude":
        return f"sk-ant-oat01-{secrets.token_urlsafe(64)}"
    return f"ya29.a0{secrets.token_urlsafe(120)}"


def new_refresh_token(provider: Provider) -> str:
    if provider == "codex":
        return f"rt_{secrets.token_urlsafe(48)}"
    if provider == "claude":
        return f"sk-ant-ort01-{secrets.token_urlsafe(64)}"
    return f"1//0{secrets.token_urlsafe(72)}"


def google_id_token(account: SimAccount, now: float) -> str:
    return encode_jwt(
        {
            "iss": "https://accounts.google.com",
            "aud": GEMINI_CLIENT_ID,
            "azp": GEMINI_CLIENT_ID,
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, account.email).int)[:21],
            "email": account.email,
            "email_verified": True,
            "iat": int(now),
            "exp": int(now + TOKEN_LIFETIME_S["gemini"]),
        }
    )


def new_account(
    provider: Provider,
    name: str,
    *,
    now: float,
    plan: str | None = None,
    windows: list[SimWindow] | None = None,
    quota_unit: QuotaUnit = "request",
    expires_in_s: float | None = None,
    config: SimConfig | None = None,
) -> SimAccount:
    """A fresh account with tokens in the provider's real shape.

    Default windows: Codex and Claude a 5-hour and a weekly window; Gemini a per-minute and
    a daily one. Capacities are generous (tests shrink them to hit a 429 quickly).
    """
    if windows is None:
        if provider == "gemini":
            windows = [SimWindow("minute", 60.0, 120.0), SimWindow("daily", 86400.0, 1500.0)]
        else:
            windows = [SimWindow("5h", 5 * 3600.0, 500.0), SimWindow("7d", 7 * 86400.0, 5000.0)]
    stable = uuid.uuid5(uuid.NAMESPACE_DNS, f"{provider}.{name}.trio-pool.sim")
    # Gemini: Code Assist Standard, the kind of licence Code Assist still serves (individual
    # accounts have been refused since 2026-06-18; see testing/gemini.py).
    default_plan = {"codex": "plus", "claude": "max", "gemini": "standard-tier"}[provider]
    account = SimAccount(
        name=name,
        provider=provider,
        access_token="",
        refresh_token=new_refresh_token(provider),
        expires_at=now + (TOKEN_LIFETIME_S[provider] if expires_in_s is None else expires_in_s),
        plan=plan or default_plan,
        email=f"{name}@example.com",
        account_id=f"acct-{stable.hex[:20]}" if provider == "codex" else str(stable),
        project=f"sim-{name}-{stable.hex[:6]}" if provider == "gemini" else "",
        windows=windows,
        quota_unit=quota_unit,
        config=config,
    )
    account.access_token = new_access_token(account, now, account.expires_at)
    return account
