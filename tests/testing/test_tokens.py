"""The simulated token endpoints: rotation, single use and the real permanent errors."""

from __future__ import annotations

from urllib.parse import urlencode

import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, codex_headers, json_body
from trio_pool.providers import identity
from trio_pool.testing import issue

JSON = [("content-type", "application/json")]
FORM = [("content-type", "application/x-www-form-urlencoded")]
# Each endpoint's bot protection lets in only the real client's identity (testing/identity.py).
CODEX_JSON = [*JSON, *identity.codex_headers()]
CODEX_FORM = [*FORM, *identity.codex_headers()]
CLAUDE_JSON = [*JSON, *identity.anthropic_token_headers()]


def codex_refresh(token: str) -> dict[str, str]:
    return {
        "client_id": issue.CODEX_CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": token,
    }


async def test_codex_refresh_rotates_and_reuse_is_refresh_token_reused(
    sim: Sim, http: HttpClient
) -> None:
    """A Codex refresh gives new JWTs and refresh token; replaying the old one is 401 refresh_token_reused."""
    account = sim.account("codex")
    old_refresh, old_access = account.refresh_token, account.access_token
    with trio.fail_after(10):
        first = await call(
            http, "POST", f"{sim.base}/oauth/token", CODEX_JSON, codex_refresh(old_refresh)
        )
        replay = await call(
            http, "POST", f"{sim.base}/oauth/token", CODEX_JSON, codex_refresh(old_refresh)
        )
        stale = await call(
            http,
            "POST",
            f"{sim.base}/backend-api/codex/responses",
            [("authorization", f"Bearer {old_access}"), ("chatgpt-account-id", account.account_id)],
            {},
        )
        fresh = await call(
            http,
            "POST",
            f"{sim.base}/backend-api/codex/responses",
            codex_headers(account),
            {"model": "gpt-5", "instructions": "", "store": False, "input": [], "stream": True},
        )
    tokens = json_body(first)
    assert first.status == 200
    assert tokens["refresh_token"] == account.refresh_token != old_refresh
    assert tokens["access_token"] == account.access_token
    claims = issue.decode_jwt_payload(tokens["id_token"])
    assert claims[issue.OPENAI_AUTH]["chatgpt_account_id"] == account.account_id
    assert claims["exp"] == int(account.expires_at)
    assert replay.status == 401
    assert json_body(replay)["error"]["code"] == "refresh_token_reused"
    assert account.refreshes == 2
    assert stale.status == 401
    assert fresh.status == 200


async def test_codex_code_exchange_is_form_encoded(sim: Sim, http: HttpClient) -> None:
    """A form-encoded authorization_code grant returns the account's new tokens once."""
    code = sim.state.new_login_code("codex/a")
    form = urlencode(
        {
            "grant_type": "authorization_code",
            "code": code,
            "client_id": issue.CODEX_CLIENT_ID,
            "redirect_uri": "http://localhost:1455/auth/callback",
            "code_verifier": "v",
        }
    )
    with trio.fail_after(10):
        first = await call(http, "POST", f"{sim.base}/oauth/token", CODEX_FORM, raw=form.encode())
        again = await call(http, "POST", f"{sim.base}/oauth/token", CODEX_FORM, raw=form.encode())
    assert first.status == 200
    assert json_body(first)["access_token"] == sim.account("codex").access_token
    assert again.status == 400


async def test_claude_refresh_rotates_and_reuse_is_invalid_grant(
    sim: Sim, http: HttpClient
) -> None:
    """A Claude refresh answers expires_in 28800 and a new refresh token; the old one is invalid_grant."""
    account = sim.account("claude")
    old = account.refresh_token
    body = {
        "grant_type": "refresh_token",
        "refresh_token": old,
        "client_id": issue.CLAUDE_CLIENT_ID,
        "scope": "user:inference",
    }
    with trio.fail_after(10):
        first = await call(http, "POST", f"{sim.base}/v1/oauth/token", CLAUDE_JSON, body)
        replay = await call(http, "POST", f"{sim.base}/v1/oauth/token", CLAUDE_JSON, body)
    tokens = json_body(first)
    assert tokens["expires_in"] == 28800
    assert tokens["access_token"].startswith("sk-ant-oat01-")
    assert tokens["refresh_token"].startswith("sk-ant-ort01-")
    assert tokens["account"]["email_address"] == account.email
    assert replay.status == 400
    assert json_body(replay)["error"] == "invalid_grant"


async def test_gemini_refresh_keeps_the_refresh_token(sim: Sim, http: HttpClient) -> None:
    """Google refresh: expires_in 3599, no refresh_token in the answer, the old one keeps working."""
    account = sim.account("gemini")
    refresh = account.refresh_token
    form = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": refresh,
            "client_id": issue.GEMINI_CLIENT_ID,
            "client_secret": issue.GEMINI_CLIENT_SECRET,
        }
    ).encode()
    with trio.fail_after(10):
        first = await call(http, "POST", f"{sim.base}/token", FORM, raw=form)
        second = await call(http, "POST", f"{sim.base}/token", FORM, raw=form)
        unknown = await call(
            http,
            "POST",
            f"{sim.base}/token",
            FORM,
            raw=form.replace(b"refresh_token=1", b"refresh_token=2"),
        )
    assert first.status == second.status == 200
    tokens = json_body(second)
    assert tokens["expires_in"] == 3599
    assert "refresh_token" not in tokens
    assert tokens["access_token"] == account.access_token
    assert account.refresh_token == refresh
    assert unknown.status == 400
    assert json_body(unknown)["error"] == "invalid_grant"


async def test_forced_refresh_failure_is_transient(sim: Sim, http: HttpClient) -> None:
    """fail_refresh answers the next refresh with the status and keeps the token usable."""
    account = sim.account("claude")
    sim.state.fail_refresh("claude/a", 503)
    body = {
        "grant_type": "refresh_token",
        "refresh_token": account.refresh_token,
        "client_id": issue.CLAUDE_CLIENT_ID,
    }
    with trio.fail_after(10):
        failed = await call(http, "POST", f"{sim.base}/v1/oauth/token", CLAUDE_JSON, body)
        passed = await call(http, "POST", f"{sim.base}/v1/oauth/token", CLAUDE_JSON, body)
    assert failed.status == 503
    assert passed.status == 200
