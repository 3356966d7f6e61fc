"""The management API: off without admin_token, every route behind the token, remote import."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio

from tests.http_client import HttpClient
from tests.proxy.conftest import Env
from trio_pool import clock
from trio_pool.config import Config
from trio_pool.errors import LoginError
from trio_pool.login.remote import send_login
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import credential_file
from trio_pool.upstream.client import UpstreamClient

TOKEN = "test-admin-token-0123456789"
ROUTES = [
    ("GET", "/api/accounts"),
    ("POST", "/api/accounts"),
    ("DELETE", "/api/accounts/codex/a"),
    ("POST", "/api/accounts/codex/a/refresh"),
    ("POST", "/api/accounts/codex/a/enable"),
    ("POST", "/api/accounts/codex/a/disable"),
]


def with_token(config: Config) -> Config:
    return attrs.evolve(config, admin_token=TOKEN)


async def call(
    env: Env, method: str, path: str, body: Any = None, token: str | None = TOKEN
) -> tuple[int, dict[str, Any]]:
    headers = [("content-type", "application/json")]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    content = json.dumps(body).encode() if body is not None else b""
    async with HttpClient() as http:
        with trio.fail_after(10):
            response = await http.request(method, env.base + path, headers=headers, content=content)
    return response.status, json.loads(response.content or b"{}")


async def test_without_admin_token_the_local_browser_is_admin_but_changes_need_the_header(
    make_env: Callable[..., Any],
) -> None:
    """Local mode, no admin_token: loopback may read; a change without x-trio-pool is a 403."""
    env = await make_env()
    status, _ = await call(env, "GET", "/api/accounts", token=None)
    assert status == 200
    status, body = await call(env, "POST", "/api/accounts/codex/a/disable", token=None)
    assert (status, body["error"]["type"]) == (403, "forbidden")


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
async def test_every_route_needs_the_token(
    make_env: Callable[..., Any],
    method: str,
    path: str,
    token: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Missing or wrong tokens get 401, logged without the token, and change nothing."""
    env = await make_env(tweak=with_token)
    caplog.set_level(logging.WARNING)
    status, body = await call(env, method, path, {}, token=token)
    assert (status, body["error"]["type"]) == (401, "unauthorized")
    assert "admin.unauthorized" in caplog.text
    assert "wrong-token" not in caplog.text
    assert TOKEN not in caplog.text
    assert (env.pool_dir / "codex" / "a.json").exists()


async def test_list_is_masked(make_env: Callable[..., Any]) -> None:
    """GET /api/accounts lists every account with live state and no secret."""
    env = await make_env(tweak=with_token)
    status, body = await call(env, "GET", "/api/accounts")
    assert status == 200
    names = [a["name"] for a in body["accounts"]]
    assert "codex/a" in names
    assert "gemini/b" in names
    text = json.dumps(body)
    assert env.sim("codex/a").access_token not in text
    assert env.sim("claude/a").refresh_token not in text
    assert all(a["state"] == "ok" for a in body["accounts"])


async def test_import_remove_and_duplicates(make_env: Callable[..., Any]) -> None:
    """POST imports (validated, 0600, refused twice), DELETE removes; both apply at once."""
    env = await make_env(tweak=with_token)
    extra = new_account("claude", "carol", now=clock.now())
    env.state.add(extra)
    document = credential_file(extra, clock.now())
    document["oauthAccount"] = {"emailAddress": extra.email, "accountUuid": extra.account_id}
    status, body = await call(
        env, "POST", "/api/accounts", {"provider": "claude", "document": document}
    )
    assert (status, body["name"]) == (201, "claude/carol@example.com")
    path = env.pool_dir / "claude" / "carol@example.com.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert env.services.registry.get("claude/carol@example.com") is not None
    status, body = await call(
        env, "POST", "/api/accounts", {"provider": "claude", "document": document, "name": "x"}
    )
    assert status == 409
    assert "already in the pool" in body["error"]["message"]
    status, _ = await call(env, "POST", "/api/accounts", {"provider": "claude", "document": {}})
    assert status == 400
    status, _ = await call(env, "DELETE", "/api/accounts/claude/carol@example.com")
    assert status == 200
    assert not path.exists()
    assert env.services.registry.get("claude/carol@example.com") is None
    status, _ = await call(env, "DELETE", "/api/accounts/claude/nobody")
    assert status == 404


async def test_refresh_enable_disable(make_env: Callable[..., Any]) -> None:
    """refresh rotates the file's tokens; disable/enable take the account out and back."""
    env = await make_env(tweak=with_token)
    before = env.sim("codex/a").refresh_token
    status, body = await call(env, "POST", "/api/accounts/codex/a/refresh")
    assert (status, body["refreshed"]) == (200, True)
    assert env.sim("codex/a").refresh_token != before
    assert env.sim("codex/a").refresh_token in (env.pool_dir / "codex" / "a.json").read_text()
    pool = env.services.pool
    status, body = await call(env, "POST", "/api/accounts/codex/a/disable")
    assert (status, body["disabled"]) == (200, True)
    assert {v.name: v.state for v in pool.accounts(clock.now())}["codex/a"] == "disabled"
    status, _ = await call(env, "POST", "/api/accounts/codex/a/enable")
    assert {v.name: v.state for v in pool.accounts(clock.now())}["codex/a"] == "ok"
    status, _ = await call(env, "GET", "/api/accounts/codex/a/enable")
    assert status == 405


async def test_remote_import(make_env: Callable[..., Any]) -> None:
    """A login made elsewhere is stored by the remote pool (the `--server` path)."""
    env = await make_env(tweak=with_token)
    extra = new_account("codex", "dave", now=clock.now())
    document = credential_file(extra, clock.now())
    client = UpstreamClient()
    try:
        with trio.fail_after(10):
            answer = await send_login(client, env.base, TOKEN, "codex", document, None)
            assert answer["name"] == "codex/dave@example.com"
            assert (env.pool_dir / "codex" / "dave@example.com.json").exists()
            with pytest.raises(LoginError, match="refused the admin token"):
                await send_login(client, env.base, "nope-nope-nope-nope", "codex", document, None)
            with pytest.raises(LoginError, match="already in the pool"):
                await send_login(client, env.base, TOKEN, "codex", document, "again")
    finally:
        await client.aclose()
