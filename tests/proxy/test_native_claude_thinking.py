"""Claude Code on Claude accounts after Codex turns: our thinking signatures never reach
Anthropic, and a body with nothing to strip is forwarded byte for byte (translation.md §3.3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from tests.http_client import HttpClient
from tests.proxy.conftest import Env
from tests.proxy.test_end_to_end import raw
from trio_pool.translate.signatures import encode_signature

CLAUDE_ONLY = [("claude", "a")]
ANTHROPIC = {"anthropic-version": "2023-06-01"}
BILLING = "x-anthropic-billing-header: cc_version=2.1.330.440; cc_entrypoint=cli; cch=1a2b3;"


@pytest.fixture
async def claude_env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(accounts=CLAUDE_ONLY)
    return env


def body_with(assistant: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "model": "claude-opus-5-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": BILLING}],
        "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": assistant},
            {"role": "user", "content": "now claude"},
        ],
    }


async def test_codex_thinking_blocks_are_stripped_before_a_claude_account(
    claude_env: Env,
) -> None:
    """A conversation that switches back to a Claude model: tp1 thinking blocks and the
    assistant turn they leave empty are gone, and the attestation says "not signed"."""
    env = claude_env
    ours = {"type": "thinking", "thinking": "plan", "signature": encode_signature("rs_1", "gAAAAB")}
    reply = await raw(env, "POST", "/v1/messages", body_with([ours]), **ANTHROPIC)
    assert reply.status == 200, reply.content
    sent = json.loads(env.sim("claude/a").last_body)
    assert "tp1:" not in env.sim("claude/a").last_body.decode()
    assert [m["role"] for m in sent["messages"]] == ["user"]
    assert "cch=00000;" in sent["system"][0]["text"]


async def test_a_body_with_nothing_to_strip_is_forwarded_byte_for_byte(claude_env: Env) -> None:
    """No foreign signature: the client's exact bytes reach the account (Claude Code's
    `cch=` attests them)."""
    env = claude_env
    body = body_with([{"type": "text", "text": "done"}])
    body["system"][0]["text"] = BILLING.replace("cch=1a2b3;", "cch=00000;")
    raw_body = json.dumps(body, indent=1).encode()
    async with HttpClient() as client:
        reply = await client.request(
            "POST",
            env.base + "/v1/messages",
            headers=[("content-type", "application/json"), *ANTHROPIC.items()],
            content=raw_body,
        )
    assert reply.status == 200, reply.content
    assert env.sim("claude/a").last_body == raw_body
