"""Claude request bodies reach Anthropic byte for byte: Claude Code signs them (cch=)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env
from trio_pool.config import AccountSettings, Config
from trio_pool.testing.claude_rules import sign

# Spacing, key order and escapes as a client might write them: any re-serialisation shows.
UNSIGNED = (
    b'{"model": "claude-opus-5-5",  "max_tokens":16,\n'
    b' "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.330.440;'
    b' cc_entrypoint=cli; cch=00000;"},{"type":"text","text":"You are Claude Code, Anthropic\'s'
    b' official CLI for Claude.","cache_control":{"type":"ephemeral","ttl":"1h"}}],'
    b'"messages":[{"role":"user","content":"caf\\u00e9 \xe2\x98\x95"}],"stream":true}'
)


async def post_raw(env: Env, body: bytes) -> Reply:
    async with HttpClient() as client:
        with trio.fail_after(10):
            return await client.request(
                "POST",
                env.base + "/v1/messages?beta=true",
                headers=[
                    ("content-type", "application/json"),
                    ("anthropic-version", "2023-06-01"),
                    ("authorization", "Bearer pool"),
                ],
                content=body,
            )


def second_is_overflow(config: Config) -> Config:
    """claude/b is an overflow tier: claude/a is always tried first."""
    return attrs.evolve(config, accounts={"claude/b": AccountSettings(priority=1)})


@pytest.mark.parametrize("path", ["direct", "after_refresh", "after_failover"])
async def test_a_signed_claude_body_reaches_anthropic_unchanged(make_env: Any, path: str) -> None:
    """The simulator checks cch against the body it got: it serves the request only when the
    bytes are the client's, also when the proxy retried after a refresh or on another account."""
    env: Env = await make_env(tweak=second_is_overflow)
    body = sign(UNSIGNED)
    first, second = env.sim("claude/a"), env.sim("claude/b")
    if path == "after_refresh":
        first.force("unauthorized", 1)
    elif path == "after_failover":
        first.force("overloaded", 1)
    response = await post_raw(env, body)
    assert response.status == 200
    answered = second if path == "after_failover" else first
    assert answered.generations == 1
    assert answered.last_body == body
    assert first.refreshes == (1 if path == "after_refresh" else 0)


async def test_a_client_without_a_subscription_gets_claude_codes_oauth_betas(env: Env) -> None:
    """An API-key-mode client's betas reach Anthropic as Claude Code sends them with OAuth:
    oauth second, extended-cache-ttl (the 1-hour cache) last."""
    api_key_mode = "claude-code-20250219,interleaved-thinking-2025-05-14,effort-2025-11-24"
    async with HttpClient() as client:
        with trio.fail_after(10):
            response = await client.request(
                "POST",
                env.base + "/v1/messages?beta=true",
                headers=[
                    ("content-type", "application/json"),
                    ("anthropic-version", "2023-06-01"),
                    ("x-api-key", "pool"),
                    ("anthropic-beta", api_key_mode),
                ],
                content=b'{"model":"claude-haiku-4-5","max_tokens":8,"messages":[]}',
            )
    assert response.status == 200
    (answered,) = [a for a in env.state.of("claude") if a.generations]
    assert answered.last_header("anthropic-beta") == (
        "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,"
        "effort-2025-11-24,extended-cache-ttl-2025-04-11"
    )
