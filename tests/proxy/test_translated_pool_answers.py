"""The pool's own answers on translated routes, in each client's shape (translation.md §0.6,
§6): Codex CLI on Claude accounts (opt-in) and Chat Completions clients on Codex or Claude
accounts get failover before content, and a pool out of quota as their own API's 429."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest
import trio

from tests.proxy.conftest import Env
from tests.proxy.test_end_to_end import raw
from tests.proxy.test_translated_messages import CODEX_ONLY, RATE_LIMITED, header
from tests.proxy.test_translated_responses import CLAUDE_ONLY, MODEL, opted_in
from trio_pool.testing.turns import HttpError, Message, Turn

REJECTED = HttpError(429, type="rate_limit_error", message="quota", resets_in_seconds=600)
CHAT = {"messages": [{"role": "user", "content": "hi"}], "stream": True}


@pytest.fixture
async def claude_env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(accounts=CLAUDE_ONLY, tweak=opted_in)
    return env


@pytest.fixture
async def codex_env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(accounts=CODEX_ONLY)
    return env


def client(env: Env) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{env.base}/v1", api_key="pool", max_retries=0, timeout=20)


def chat_text(env: Env, model: str) -> str:
    """A streamed chat completion through the openai SDK; the text it assembled."""
    with client(env) as sdk:
        chunks = list(
            sdk.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hi"}], stream=True
            )
        )
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


async def test_codex_cli_on_claude_fails_over_a_429_unseen(claude_env: Env) -> None:
    """A quota 429 from the first Claude account: the openai SDK's Responses stream comes
    whole from the other account."""
    env = claude_env
    env.state.scripts.add("claude", [Turn(http_error=REJECTED), Turn(items=(Message("moved"),))])

    def run() -> list[Any]:
        with client(env) as sdk:
            return list(sdk.responses.create(model=MODEL, input="hi", store=False, stream=True))

    with trio.fail_after(20):
        events = await trio.to_thread.run_sync(run)
    assert [e.type for e in events][-1] == "response.completed"
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == "moved"
    assert sum(a.requests for a in env.state.of("claude")) == 2


async def test_codex_cli_on_an_exhausted_claude_pool_gets_usage_limit_reached(
    claude_env: Env,
) -> None:
    """Every Claude account rejected (unified-status rejected): Codex CLI gets Codex's own
    429 usage_limit_reached with resets_at and retry-after (T36), first from the accounts'
    answers and then from the pool itself while they cool."""
    env = claude_env
    env.state.scripts.add("claude", [Turn(http_error=REJECTED)] * 2)
    body = {"model": MODEL, "input": "hi", "stream": True, "store": False}
    for attempt in ("upstream", "pool"):
        reply = await raw(env, "POST", "/v1/responses", body)
        assert reply.status == 429, (attempt, reply.content)
        error = json.loads(reply.content)["error"]
        assert error["type"] == "usage_limit_reached", (attempt, error)
        wait = int(header(reply, "retry-after"))
        assert 500 <= wait <= 600, attempt
        assert abs(error["resets_at"] - (time.time() + wait)) < 60, attempt
    assert sum(a.requests for a in env.state.of("claude")) == 2


async def test_an_overloaded_claude_pool_is_never_called_a_usage_limit(
    make_env: Callable[..., Any],
) -> None:
    """Claude's 529 overloaded on every account is no quota: Codex CLI gets a plain 429 with
    a short retry-after, not usage_limit_reached (which would stop it for the day)."""
    env: Env = await make_env(accounts=CLAUDE_ONLY[:1], tweak=opted_in)
    overloaded = HttpError(529, type="overloaded_error", message="Overloaded")
    env.state.scripts.add("claude", [Turn(http_error=overloaded)] * 3)
    reply = await raw(env, "POST", "/v1/responses", {"model": MODEL, "input": "hi"})
    assert reply.status == 429, reply.content
    assert json.loads(reply.content)["error"]["type"] != "usage_limit_reached"
    assert int(header(reply, "retry-after")) <= 60


async def test_chat_fails_over_a_failure_right_after_response_created(codex_env: Env) -> None:
    """response.failed before any content on a Chat stream: the client's stream is the
    next account's, whole."""
    env = codex_env
    env.state.scripts.add("codex", [Turn(end="failed", error=RATE_LIMITED)])
    env.state.scripts.add("codex", [Turn(items=(Message("second"),))])
    with trio.fail_after(20):
        text = await trio.to_thread.run_sync(chat_text, env, "gpt-5")
    assert text == "second"
    assert sum(a.requests for a in env.state.of("codex")) == 2


async def test_chat_on_claude_accounts_needs_the_opt_in(make_env: Callable[..., Any]) -> None:
    """A Chat client asking for a Claude model is refused without codex_on_claude, and is
    served by a Claude account with it."""
    env: Env = await make_env(accounts=CLAUDE_ONLY)
    reply = await raw(env, "POST", "/v1/chat/completions", {"model": MODEL, **CHAT})
    assert reply.status == 400, reply.content
    assert "codex_on_claude" in json.loads(reply.content)["error"]["message"]
    assert all(a.requests == 0 for a in env.state.of("claude"))

    env = await make_env(accounts=CLAUDE_ONLY, tweak=opted_in)
    env.state.scripts.add("claude", [Turn(items=(Message("from claude"),))])
    with trio.fail_after(20):
        text = await trio.to_thread.run_sync(chat_text, env, MODEL)
    assert text == "from claude"


async def test_chat_on_an_exhausted_claude_pool_is_a_rate_limit_error(claude_env: Env) -> None:
    """Every Claude account rejected: the Chat client gets 429 rate_limit_error /
    rate_limit_exceeded with retry-after (§6)."""
    env = claude_env
    env.state.scripts.add("claude", [Turn(http_error=REJECTED)] * 2)
    reply = await raw(env, "POST", "/v1/chat/completions", {"model": MODEL, **CHAT})
    assert reply.status == 429, reply.content
    error = json.loads(reply.content)["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert 500 <= int(header(reply, "retry-after")) <= 600
