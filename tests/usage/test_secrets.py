"""No token (an account's or a client's) reaches the ledger db, the log or /metrics."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient
from tests.proxy.conftest import Env
from tests.usage.conftest import ledger_rows

CLIENT_BEARER = "sk-ant-oat01-PLANTEDclientSECRET0123456789abcdef"
CLIENT_KEY = "planted-client-key-0123456789abcdef"


async def send(env: Env, path: str, body: Any, *headers: tuple[str, str]) -> int:
    async with HttpClient() as client:
        with trio.fail_after(10):
            response = await client.request(
                "POST" if body is not None else "GET",
                env.base + path,
                headers=[("content-type", "application/json"), *headers],
                content=b"" if body is None else json.dumps(body).encode(),
            )
    return response.status


async def test_planted_tokens_never_reach_ledger_logs_or_metrics(
    make_env: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Account tokens and client credentials are absent from every byte we keep or serve."""
    caplog.set_level(logging.DEBUG, logger="trio_pool")
    env: Env = await make_env(accounts=[("claude", "a"), ("claude", "b"), ("codex", "a")])
    env.sim("claude/a").force("unauthorized", 1)  # a 401: a refresh, maybe a failover
    env.sim("claude/b").force("quota", 1)
    planted = [CLIENT_BEARER, CLIENT_KEY]
    for key in ("claude/a", "claude/b", "codex/a"):
        planted += [env.sim(key).access_token, env.sim(key).refresh_token]
    claude = {"model": "m", "max_tokens": 8, "messages": [], "metadata": {"user_id": "u"}}
    auth = ("authorization", f"Bearer {CLIENT_BEARER}")
    for _ in range(3):
        await send(env, "/v1/messages", claude, auth, ("anthropic-version", "2023-06-01"))
    codex = {"model": "gpt-5", "instructions": "", "store": False, "input": "hi", "stream": True}
    await send(env, "/v1/responses", codex, ("authorization", f"Bearer {CLIENT_KEY}"))
    rows = await ledger_rows(env, 4)
    assert any(row.failures for row in rows)  # a failure reason was written too
    async with HttpClient() as client:
        metrics = (await client.request("GET", env.base + "/metrics")).content.decode()
    data_dir = env.running.config.data_dir
    stored = b"".join(p.read_bytes() for p in data_dir.iterdir() if p.name.startswith("state.db"))
    for secret in planted:
        assert secret.encode() not in stored
        assert secret not in caplog.text
        assert secret not in metrics
        assert secret not in repr(rows)
