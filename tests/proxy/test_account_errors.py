"""The real services' account errors through the proxy: refresh only when the token is the
problem, fail over past Cloudflare and refused accounts, try another plan for a model."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env
from trio_pool import clock
from trio_pool.config import AccountSettings, Config
from trio_pool.testing.issue import new_account
from trio_pool.testing.state import SimState

CODEX_BODY = {
    "model": "gpt-5",
    "instructions": "",
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
SPARK = "gpt-5.3-codex-spark"  # a model only the simulator's Pro plan has


async def post(env: Env, path: str, body: Any) -> Reply:
    async with HttpClient() as client:
        with trio.fail_after(10):
            return await client.request(
                "POST",
                env.base + path,
                headers=[("content-type", "application/json"), ("anthropic-version", "2023-06-01")],
                content=json.dumps(body).encode(),
            )


def state_of(env: Env, key: str) -> tuple[str, str]:
    """(state, reason) of a pooled account now."""
    (view,) = [v for v in env.services.pool.accounts(clock.now()) if v.name == key]
    return view.state, view.state_reason


def second_is_overflow(config: Config) -> Config:
    """The second account of each provider is an overflow tier: the first is always tried first."""
    tier = AccountSettings(priority=1)
    return attrs.evolve(config, accounts={"codex/b": tier, "claude/b": tier})


@pytest.mark.parametrize("provider", ["codex", "claude"])
async def test_cloudflare_403_fails_over_and_spends_no_refresh(
    make_env: Any, provider: str
) -> None:
    """An HTML 403 from Cloudflare says nothing about the token: next account, a short
    backoff, and the single-use refresh token stays unspent."""
    env: Env = await make_env(tweak=second_is_overflow)
    first, second = env.sim(f"{provider}/a"), env.sim(f"{provider}/b")
    first.force("cloudflare", 1)
    path, body = CALLS[provider]
    response = await post(env, path, body)
    assert response.status == 200
    assert (first.requests, first.generations, second.generations) == (1, 0, 1)
    assert first.refreshes == 0
    state, reason = state_of(env, first.key)
    assert state == "backoff"
    assert "Cloudflare" in reason


async def test_claude_403_revoked_refreshes_and_retries_the_same_account(env: Env) -> None:
    """Claude's 403 "OAuth token has been revoked" is the one 403 a refresh fixes."""
    first, second = env.state.of("claude")
    second.force("quota", 3)
    first.force("revoked", 1)
    response = await post(env, "/v1/messages", CLAUDE_BODY)
    assert response.status == 200
    assert first.refreshes == 1
    assert first.generations == 1


async def test_deactivated_workspace_backs_off_and_fails_over_without_refresh(
    make_env: Any,
) -> None:
    """Codex 402 deactivated_workspace: the account backs off, the next one answers, and the
    next request does not try the refused account again."""
    env: Env = await make_env(tweak=second_is_overflow)
    first, second = env.sim("codex/a"), env.sim("codex/b")
    first.force("deactivated_workspace", 5)
    for _ in range(2):
        response = await post(env, "/v1/responses", CODEX_BODY)
        assert response.status == 200
    assert second.generations == 2
    assert (first.requests, first.refreshes) == (1, 0)
    state, reason = state_of(env, first.key)
    assert state == "backoff"
    assert "deactivated_workspace" in reason


async def test_model_not_in_plan_is_tried_on_an_account_with_another_plan(
    make_env: Any,
) -> None:
    """Codex's 400 "model is not supported ... ChatGPT account" moves the request to an
    account on another plan before the client sees it."""
    now = clock.now()
    state = SimState.with_accounts(
        [
            new_account("codex", "plus1", now=now, plan="plus"),
            new_account("codex", "plus2", now=now, plan="plus"),
            new_account("codex", "pro", now=now, plan="pro"),
        ]
    )
    env: Env = await make_env(state=state)
    response = await post(env, "/v1/responses", {**CODEX_BODY, "model": SPARK})
    assert response.status == 200
    assert env.sim("codex/pro").generations == 1
    # At most one Plus account was asked: the other is on the same plan.
    assert env.sim("codex/plus1").requests + env.sim("codex/plus2").requests <= 1


async def test_model_not_in_any_plan_gives_the_client_the_original_400(env: Env) -> None:
    """With no account on another plan, the client gets the upstream's 400 as it came."""
    response = await post(env, "/v1/responses", {**CODEX_BODY, "model": SPARK})
    assert response.status == 400
    assert json.loads(response.content) == {
        "detail": f"The '{SPARK}' model is not supported when using Codex with a ChatGPT account."
    }
    asked = sum(a.requests for a in env.state.of("codex"))
    assert asked == 1  # both accounts are Plus: the second was not asked


@pytest.mark.parametrize(
    ("provider", "fault", "kind", "text"),
    [
        ("claude", "org_disabled", "org_disabled", "This organization has been disabled."),
        ("codex", "usage_not_included", "no_codex_plan", "plan has no Codex"),
    ],
)
async def test_an_account_only_its_owner_can_fix_needs_action_until_its_file_changes(
    make_env: Any, provider: str, fault: Any, kind: str, text: str
) -> None:
    """Claude's "organization has been disabled" and Codex's usage_not_included take the
    account out of rotation as needs_action (no refresh, no retry every minute or hour); the
    request is answered by the next account, and a new pool file brings the account back."""
    env: Env = await make_env(tweak=second_is_overflow)
    first, second = env.sim(f"{provider}/a"), env.sim(f"{provider}/b")
    first.force(fault, 1)
    path, body = CALLS[provider]
    for _ in range(3):
        response = await post(env, path, body)
        assert response.status == 200
    assert (first.requests, first.refreshes, second.generations) == (1, 0, 3)
    state, reason = state_of(env, first.key)
    assert state == "needs_action"
    assert kind in reason
    assert text in reason
    # The owner fixes it and logs in again: the file changes, the account serves again.
    registry = env.services.registry
    pooled = registry.get(first.key)
    assert pooled is not None
    document = json.loads(pooled.path.read_text())
    document["note"] = "logged in again"
    pooled.path.write_text(json.dumps(document))
    registry.scan()
    assert state_of(env, first.key)[0] == "ok"
    response = await post(env, path, body)
    assert response.status == 200
    assert first.generations == 1
