"""trio-pool's own calls (refresh, usage polls) get past the real endpoints' bot protection,
which the simulator reproduces (trio_pool/testing/identity.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env
from trio_pool import clock
from trio_pool.credentials.polls import poll_account

CODEX_BODY = {
    "model": "gpt-5",
    "instructions": "You are a helpful assistant.",
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ],
    "store": False,
    "stream": True,
}
CLAUDE_BODY = {
    "model": "claude-haiku-4-5",
    "max_tokens": 16,
    "messages": [{"role": "user", "content": "hi"}],
}
CALLS = {"codex": ("/v1/responses", CODEX_BODY), "claude": ("/v1/messages", CLAUDE_BODY)}


async def post(env: Env, path: str, body: Any) -> Reply:
    async with HttpClient() as client:
        with trio.fail_after(10):
            return await client.request(
                "POST",
                env.base + path,
                headers=[("content-type", "application/json"), ("anthropic-version", "2023-06-01")],
                content=json.dumps(body).encode(),
            )


@pytest.mark.parametrize("provider", ["codex", "claude"])
async def test_a_refresh_gets_past_the_token_endpoints_bot_protection(
    env: Env, provider: str
) -> None:
    """A 401 leads to a refresh that the token endpoint accepts: the request is answered."""
    first, *others = env.state.of(provider)  # type: ignore[arg-type]
    for other in others:
        other.force("quota", 3)
    first.force("unauthorized", 1)
    path, body = CALLS[provider]
    response = await post(env, path, body)
    assert response.status == 200
    assert first.refreshes == 1
    assert first.generations == 1


@pytest.mark.parametrize("provider", ["codex", "claude"])
async def test_usage_polls_get_past_the_usage_endpoints_bot_protection(
    env: Env, provider: str
) -> None:
    """wham/usage and oauth/usage answer our polls (the simulator refuses a caller without the
    CLI's identity), and their numbers reach the pool."""
    services = env.services
    account = env.state.of(provider)[0]  # type: ignore[arg-type]
    pooled = services.registry.get(account.key)
    assert pooled is not None
    status = await poll_account(
        pooled, services.pool, services.refresher, services.client, services.upstreams
    )
    assert status == 200
    (view,) = [v for v in services.pool.accounts(clock.now()) if v.name == account.key]
    assert view.windows


async def test_token_endpoint_429_holds_refreshes_back_for_its_retry_after(env: Env) -> None:
    """A 429 with Retry-After from the token endpoint: no refresh is tried again before it ends."""
    first, second = env.state.of("claude")
    first.force("unauthorized", 2)
    env.state.fail_refresh(first.key, 429, retry_after_s=900)
    started = clock.now()
    response = await post(env, "/v1/messages", CLAUDE_BODY)
    assert response.status == 200  # answered by the other account
    assert second.generations == 1
    pooled = env.services.registry.get(first.key)
    assert pooled is not None
    assert pooled.refresh_retry_at >= started + 900
    again = await post(env, "/v1/messages", CLAUDE_BODY)
    assert again.status == 200
    assert first.refreshes == 1  # the second 401 did not call the token endpoint again
