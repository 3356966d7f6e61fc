"""Pool features seen from outside: Codex's pooled usage, usage polls, fast mode."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest

from tests.http_client import HttpClient
from tests.proxy.conftest import Env
from trio_pool import clock
from trio_pool.config import Config
from trio_pool.credentials.polls import poll_account
from trio_pool.providers.base import PreparedRequest
from trio_pool.providers.codex import with_priority_tier

BODY = {"model": "m", "instructions": "", "store": False, "input": "hi", "stream": True}


async def get(env: Env, path: str) -> Any:
    async with HttpClient() as client:
        response = await client.request("GET", env.base + path)
    assert response.status == 200
    return json.loads(response.content)


async def test_codex_wham_usage_is_the_pools_aggregate(env: Env) -> None:
    """/backend-api/wham/usage answers with the pool's numbers in Codex's own shape."""
    services = env.services
    for account in env.state.of("codex"):
        pooled = services.registry.get(account.key)
        assert pooled is not None
        await poll_account(
            pooled, services.pool, services.refresher, services.client, services.upstreams
        )
    usage = await get(env, "/backend-api/wham/usage")
    limits = usage["rate_limit"]
    assert limits["allowed"] is True
    assert limits["primary_window"]["limit_window_seconds"] > 0
    assert 0 <= limits["primary_window"]["used_percent"] <= 100


@pytest.mark.parametrize("provider", ["codex", "claude", "gemini"])
async def test_usage_poll_teaches_the_pool_an_accounts_windows(env: Env, provider: str) -> None:
    """A usage poll reads each provider's usage endpoint into the account's windows."""
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
    assert view.requests_today == 0  # a probe is not traffic


async def test_fast_mode_asks_for_priority_unless_the_client_chose(make_env: Any) -> None:
    """fast_mode = "always" adds service_tier=priority; a tier the client set is kept."""

    def always(config: Config) -> Config:
        return attrs.evolve(config, routing=attrs.evolve(config.routing, fast_mode="always"))

    env = await make_env(accounts=[("codex", "a")], tweak=always)
    account = env.sim("codex/a")
    async with HttpClient() as client:
        for body, expected in (
            ({**BODY}, "priority"),
            ({**BODY, "service_tier": "flex"}, "flex"),
        ):
            response = await client.request(
                "POST",
                env.base + "/v1/responses",
                headers=[("content-type", "application/json")],
                content=json.dumps(body).encode(),
            )
            assert response.status == 200
            assert json.loads(account.last_body)["service_tier"] == expected


def test_priority_tier_only_touches_responses_calls() -> None:
    """Fast mode leaves other Codex calls and non-JSON bodies alone."""
    models = PreparedRequest("GET", "http://x/models", (), b"")
    assert with_priority_tier(models) is models
    garbage = PreparedRequest("POST", "http://x/responses", (), b"not json")
    assert with_priority_tier(garbage) is garbage


async def test_side_calls_are_not_use_of_an_account(env: Env) -> None:
    """Model lists and set-up calls need credentials but count as no request and pin nothing."""
    async with HttpClient() as client:
        for method, path in (
            ("GET", "/v1/models?client_version=0.169.0"),
            ("POST", "/v1internal:loadCodeAssist"),
        ):
            response = await client.request(
                method,
                env.base + path,
                headers=[("session-id", "s-1")],
                content=b"{}" if method == "POST" else b"",
            )
            assert response.status == 200
    for view in env.services.pool.accounts(clock.now()):
        assert view.requests_today == 0
        assert view.pinned_conversations == 0
        assert view.last_used is None


async def test_a_request_waits_for_the_first_account_to_come_back(make_env: Any) -> None:
    """With every account briefly backing off, the request waits (queue_wait_s) and succeeds
    instead of failing the CLI (design.md §3.4)."""

    def wait_a_little(config: Config) -> Config:
        return attrs.evolve(config, routing=attrs.evolve(config.routing, queue_wait_s=5.0))

    env = await make_env(accounts=[("claude", "a")], tweak=wait_a_little)
    env.sim("claude/a").force("throttle", 1)  # a request-scoped 429: a short backoff only
    async with HttpClient() as client:
        response = await client.request(
            "POST",
            env.base + "/v1/messages",
            headers=[("content-type", "application/json"), ("anthropic-version", "2023-06-01")],
            content=json.dumps({"model": "m", "max_tokens": 8, "messages": []}).encode(),
        )
    assert response.status == 200
    assert env.sim("claude/a").requests == 2
