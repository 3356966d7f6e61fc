"""Shared mode over real HTTP: pool keys on every proxied request, sign-up, sign-in, limits."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import anthropic
import attrs
import openai
import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env
from trio_pool import clock
from trio_pool.auth.model import UserLimits
from trio_pool.config import Config

CODE = "friends-only-42"
JOIN_HEADERS = {"x-trio-pool": "1"}


def shared(config: Config) -> Config:
    return attrs.evolve(config, friend_code=CODE, friend_name="Test pool")


async def call(
    env: Env,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, Any], Reply]:
    sent = [("content-type", "application/json"), *(headers or {}).items()]
    content = b"" if body is None else json.dumps(body).encode()
    async with HttpClient() as http:
        with trio.fail_after(10):
            response = await http.request(method, env.base + path, headers=sent, content=content)
    try:
        document = json.loads(response.content or b"{}")
    except ValueError:
        document = {}
    return response.status, document, response


async def join(env: Env, name: str) -> tuple[str, str]:
    """Sign up with the friend code: (key, session cookie)."""
    status, document, response = await call(
        env, "POST", "/api/join", {"code": CODE, "name": name}, JOIN_HEADERS
    )
    assert status == 201, document
    cookie = dict(response.headers)[b"set-cookie"].decode().split(";")[0]
    return document["key"], cookie


def claude(env: Env, key: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=env.base, auth_token=key, max_retries=0)


def ask_claude(env: Env, key: str) -> str:
    with claude(env, key) as client:
        message = client.messages.create(
            model="claude-opus-5-5", max_tokens=16, messages=[{"role": "user", "content": "hi"}]
        )
    return message.content[0].text  # type: ignore[union-attr]


async def test_a_shared_pool_refuses_requests_without_a_key_in_the_providers_shape(
    make_env: Callable[..., Any],
) -> None:
    """No key: 401 as Anthropic's authentication error, nothing reached an account."""
    env = await make_env(tweak=shared)

    def run() -> None:
        with (
            anthropic.Anthropic(base_url=env.base, auth_token="pool", max_retries=0) as client,
            pytest.raises(anthropic.AuthenticationError, match="pool key"),
        ):
            client.messages.create(
                model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )

    await trio.to_thread.run_sync(run)
    assert not any(a.generations for a in env.state.of("claude"))


async def test_a_friend_joins_with_the_code_and_their_key_works_for_every_cli(
    make_env: Callable[..., Any],
) -> None:
    """Sign-up gives a key; Claude (Bearer), Codex (header) and Gemini (Bearer) pass with it,
    and the ledger rows carry the friend's name."""
    env = await make_env(tweak=shared)
    key, _ = await join(env, "ann")
    text = await trio.to_thread.run_sync(ask_claude, env, key)
    assert text == env.state.config.text

    def codex() -> str:
        with openai.OpenAI(
            base_url=f"{env.base}/v1",
            api_key="unused",
            default_headers={"x-trio-pool-key": key},
            max_retries=0,
        ) as client:
            stream = client.responses.create(
                model="gpt-5", instructions="Be brief.", input="hi", store=False, stream=True
            )
            return "".join(e.delta for e in stream if e.type == "response.output_text.delta")

    assert await trio.to_thread.run_sync(codex) == env.state.config.text
    body = {
        "model": "gemini-2.5-pro",
        "request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    }
    status, _, _ = await call(
        env, "POST", "/v1internal:generateContent", body, {"authorization": f"Bearer {key}"}
    )
    assert status == 200
    ledger = env.services.ledger
    assert ledger is not None
    users = {row.user for row in ledger.buffer.take(100)}
    assert users == {"ann"}


async def test_a_wrong_or_revoked_key_is_refused(make_env: Callable[..., Any]) -> None:
    """A made-up key and a revoked one both get 401; the user's other key still works."""
    env = await make_env(tweak=shared)
    directory = env.services.directory
    _, first = await directory.add_user("bob")
    record, second = await directory.issue_key("bob")
    await directory.revoke_key(record.id)

    def run(key: str) -> str:
        try:
            return ask_claude(env, key)
        except anthropic.AuthenticationError as exc:
            return f"401 {exc.message}"

    assert (await trio.to_thread.run_sync(run, "tp-" + "x" * 40)).startswith("401")
    assert (await trio.to_thread.run_sync(run, second)).startswith("401 ")
    assert await trio.to_thread.run_sync(run, first) == env.state.config.text


async def test_the_friend_code_is_protected_against_guessing(make_env: Callable[..., Any]) -> None:
    """Five wrong codes and the sixth try, even with the right code, is a 429 with Retry-After."""
    env = await make_env(tweak=shared)
    for _ in range(5):
        status, _, _ = await call(
            env, "POST", "/api/join", {"code": "guess-1234", "name": "eve"}, JOIN_HEADERS
        )
        assert status == 401
    status, document, response = await call(
        env, "POST", "/api/join", {"code": CODE, "name": "eve"}, JOIN_HEADERS
    )
    assert status == 429
    assert document["error"]["type"] == "rate_limited"
    assert int(dict(response.headers)[b"retry-after"]) > 0
    assert "eve" not in env.services.directory.users


async def test_a_user_over_their_rpm_limit_gets_a_429_naming_the_limit(
    make_env: Callable[..., Any],
) -> None:
    """Two requests a minute: the third is refused by trio-pool, not by an account."""
    env = await make_env(tweak=shared)
    _, key = await env.services.directory.add_user("cap", UserLimits(rpm=2))
    for _ in range(2):
        await trio.to_thread.run_sync(ask_claude, env, key)

    def third() -> anthropic.RateLimitError:
        with pytest.raises(anthropic.RateLimitError) as caught:
            ask_claude(env, key)
        return caught.value

    error = await trio.to_thread.run_sync(third)
    assert "2 requests per minute" in error.message
    assert error.response.headers["retry-after"]


async def test_admin_signs_in_with_the_password_and_out_again(
    make_env: Callable[..., Any],
) -> None:
    """The password gives an HttpOnly SameSite=Strict session; a wrong one a 401; logout ends it."""
    env = await make_env(tweak=shared)
    await env.services.directory.set_password("a long admin password")
    status, _, _ = await call(env, "GET", "/api/users")
    assert status == 401
    status, _, _ = await call(
        env, "POST", "/api/session", {"password": "wrong password!"}, JOIN_HEADERS
    )
    assert status == 401
    status, document, response = await call(
        env, "POST", "/api/session", {"password": "a long admin password"}, JOIN_HEADERS
    )
    assert status == 200
    assert document["user"]["role"] == "admin"
    set_cookie = dict(response.headers)[b"set-cookie"].decode()
    assert "HttpOnly" in set_cookie
    assert "SameSite=Strict" in set_cookie
    cookie = {"cookie": set_cookie.split(";")[0]}
    status, users, _ = await call(env, "GET", "/api/users", headers=cookie)
    assert status == 200
    assert users == {"users": []}
    status, document, response = await call(
        env, "DELETE", "/api/session", headers={**cookie, **JOIN_HEADERS}
    )
    assert document["user"] is None
    assert "Max-Age=0" in dict(response.headers)[b"set-cookie"].decode()


async def test_changes_need_the_dashboard_header(make_env: Callable[..., Any]) -> None:
    """A cross-site form cannot add the x-trio-pool header: without it a change is a 403."""
    env = await make_env()
    status, document, _ = await call(env, "POST", "/api/accounts/claude/a/disable")
    assert status == 403
    assert "x-trio-pool" in document["error"]["message"]
    status, _, _ = await call(env, "POST", "/api/accounts/claude/a/disable", headers=JOIN_HEADERS)
    assert status == 200


async def test_local_mode_admits_the_local_browser_but_not_a_rebound_host(
    make_env: Callable[..., Any],
) -> None:
    """Local mode: loopback is the admin; a page reached under another Host name is not."""
    env = await make_env()
    status, document, _ = await call(env, "GET", "/api/session")
    assert (status, document["mode"], document["user"]["role"]) == (200, "local", "admin")
    status, document, _ = await call(env, "GET", "/api/session", headers={"host": "evil.test"})
    assert status == 421
    status, _, _ = await call(env, "GET", "/api/users", headers={"host": "evil.test"})
    assert status == 421


async def test_the_page_is_served_with_a_strict_content_security_policy(env: Env) -> None:
    """/ is the dashboard, from the package, allowed to load nothing from elsewhere."""
    status, _, response = await call(env, "GET", "/")
    headers = dict(response.headers)
    assert status == 200
    assert b"<html" in response.content.lower()
    assert b"default-src 'self'" in headers[b"content-security-policy"]
    assert headers[b"x-frame-options"] == b"DENY"
    status, _, _ = await call(env, "GET", "/assets/../config.py")
    assert status == 400  # dot-segments are refused on every route


async def test_no_key_reaches_the_logs_ledger_or_upstream(
    make_env: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """A planted pool key is never logged, stored or forwarded to an account."""
    caplog.set_level(logging.DEBUG)
    env = await make_env(tweak=shared)
    key, _ = await join(env, "zed")
    await trio.to_thread.run_sync(ask_claude, env, key)
    services = env.services
    assert services.ledger is not None
    assert services.state is not None
    await services.ledger.flush(services.state)
    assert key not in caplog.text
    db = (env.pool_dir.parent / "data" / "state.db").read_bytes()
    assert key.encode() not in db
    await services.directory.set_password("a long admin password")
    _, _, response = await call(
        env, "POST", "/api/session", {"password": "a long admin password"}, JOIN_HEADERS
    )
    admin = {"cookie": dict(response.headers)[b"set-cookie"].decode().split(";")[0]}
    for path in (
        "/metrics",
        "/healthz",
        "/api/users",
        "/api/requests",
        "/api/pool",
        "/api/overview",
        "/api/usage?by=user",
        "/",
    ):
        status, _, page = await call(env, "GET", path, headers=admin)
        assert status == 200, path
        assert key.encode() not in page.content, path
    for account in env.state.of("claude"):
        assert key not in repr(account.last_headers)
        assert key.encode() not in account.last_body


async def test_listening_beyond_loopback_needs_shared_mode(tmp_path: Any) -> None:
    """0.0.0.0 without a friend code or users is refused with the reason."""
    from trio_pool.app import serve_proxy
    from trio_pool.errors import ConfigError

    config = Config(listen="0.0.0.0:0", data_dir=tmp_path / "data", pool_dir=tmp_path / "pool")
    with pytest.raises(ConfigError, match="shared mode"):
        await serve_proxy(config)


async def test_a_user_over_their_share_of_the_window_quota_gets_a_429(
    make_env: Callable[..., Any],
) -> None:
    """What the user's requests moved the accounts' windows by is theirs: past 1 % of the
    pool's 5 h capacity the next request is refused, naming the window and the limit."""
    env = await make_env(tweak=shared)
    _, key = await env.services.directory.add_user("big", UserLimits(share_pct=1))

    def until_refused() -> tuple[int, str]:
        for sent in range(1, 41):
            try:
                ask_claude(env, key)
            except anthropic.RateLimitError as exc:
                return sent, exc.message
        return 0, "never refused"

    sent, message = await trio.to_thread.run_sync(until_refused)
    assert sent > 1
    assert "big used" in message
    assert "limit is 1 %" in message
    limiter = env.services.directory.limiter
    assert limiter.share_used("big", "claude", "5h", clock.now()) >= 0.01
