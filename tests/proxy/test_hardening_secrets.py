"""Secrets never appear in what the hardening added: refusals (400/404/421/429/503), sign-in
and sign-out, revocation, the users marker, the session cookie, logs and state.db."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from tests.proxy.raw_http import send
from tests.proxy.test_shared_mode import CODE, JOIN_HEADERS, call, shared
from trio_pool.config import Config

PASSWORD = "a very secret admin password"
TOKEN = "secret-admin-token-0123456789abcdef"
JSON = {"content-type": "application/json", **JOIN_HEADERS}


def hardened(config: Config) -> Config:
    join = attrs.evolve(config.join, signups_per_hour=2)
    return attrs.evolve(shared(config), admin_token=TOKEN, join=join)


async def test_no_secret_reaches_answers_logs_cookies_or_files(
    make_env: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Every new refusal and session path, with planted secrets; none is found anywhere."""
    caplog.set_level(logging.DEBUG)
    env = await make_env(tweak=hardened)
    directory = env.services.directory
    await directory.set_password(PASSWORD)
    _, key = await directory.add_user("ann")
    answers: list[bytes] = []

    async def do(method: str, path: str, body: Any = None, **headers: str) -> int:
        data = b"" if body is None else json.dumps(body).encode()
        status, document = await send(
            env.base, method, path, headers={**JSON, **headers}, body=data
        )
        answers.append(repr(document).encode())
        return status

    bearer = f"Bearer {key}"
    assert await do("DELETE", "/backend-api/conversations/x", authorization=bearer) == 404
    assert await do("GET", "/backend-api/../x", authorization=bearer) == 400
    assert await do("POST", "/api/session", {"password": "wrong " + PASSWORD}) == 401
    assert await do("POST", "/api/session", {"key": key + "x"}) == 401
    status, _, response = await call(env, "POST", "/api/session", {"key": key}, JOIN_HEADERS)
    assert status == 200
    cookie = dict(response.headers)[b"set-cookie"].decode().split(";")[0].split("=", 1)[1]
    payload = base64.urlsafe_b64decode(cookie.split(".")[1] + "==")
    assert await do("POST", "/api/join", {"code": CODE, "name": "bo"}) == 201
    assert await do("POST", "/api/join", {"code": CODE, "name": "cy"}) == 201
    assert await do("POST", "/api/join", {"code": CODE, "name": "di"}) == 429
    assert await do("POST", "/api/join", {"code": CODE + "x", "name": "ed"}) == 401
    assert (
        await do(
            "PATCH", "/api/users/ann", {"limits": {"rpm": 1e309}}, authorization=f"Bearer {TOKEN}"
        )
        == 400
    )
    (record,) = directory.keys_of("ann")
    assert await do("DELETE", f"/api/keys/{record.id}", authorization=f"Bearer {TOKEN}") == 200
    assert await do("DELETE", "/api/session") == 200

    secrets = [key, PASSWORD, TOKEN, CODE, *_tokens(env)]
    data_dir = env.running.config.data_dir
    files = b"".join(path.read_bytes() for path in data_dir.iterdir() if path.is_file())
    for secret in secrets:
        assert secret not in caplog.text, secret[:6]
        assert not any(secret.encode() in answer for answer in answers), secret[:6]
        assert secret.encode() not in files, secret[:6]
        assert secret.encode() not in payload
    assert directory.secret.hex() not in caplog.text


def _tokens(env: Any) -> list[str]:
    found = []
    for account in env.state.accounts.values():
        found += [account.access_token, account.refresh_token]
    return found
