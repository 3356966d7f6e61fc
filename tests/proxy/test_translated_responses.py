"""Codex CLI's Responses API on Claude accounts (translation.md §4): off by default, an
account risk; with ``codex_on_claude`` the official openai SDK's Responses through the
proxy against the simulated Claude."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import openai
import pytest
import trio
import trio_websocket

from tests.proxy.conftest import Env
from tests.proxy.test_end_to_end import raw
from tests.proxy.test_websocket import client_headers, url
from tests.testing.test_websocket import connect
from trio_pool.config import Config
from trio_pool.testing.turns import FunctionCall, Message, Turn

CLAUDE_ONLY = [("claude", "a"), ("claude", "b")]
MODEL = "claude-sonnet-4-5"
SHELL: Any = {"type": "function", "name": "shell", "parameters": {"type": "object"}}


def opted_in(config: Config) -> Config:
    return attrs.evolve(config, translate=attrs.evolve(config.translate, codex_on_claude=True))


@pytest.fixture
async def claude_env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(accounts=CLAUDE_ONLY, tweak=opted_in)
    return env


def responses_client(env: Env) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{env.base}/v1", api_key="pool", max_retries=0, timeout=20)


def served(env: Env) -> list[str]:
    return [a.key for a in env.state.of("claude") if a.generations]


async def test_openai_sdk_streams_a_response_from_a_claude_account(claude_env: Env) -> None:
    """With the opt-in, a streamed Responses call for a Claude model is served by a Claude
    account: items added before deltas, and response.completed with an id and usage."""
    env = claude_env
    turn = Turn(items=(Message("from claude"), FunctionCall("shell", '{"cmd":"ls"}')))
    env.state.scripts.add("claude", [turn])

    def run() -> list[Any]:
        with responses_client(env) as client:
            stream = client.responses.create(
                model=MODEL,
                instructions="Be brief.",
                input="hi",
                tools=[SHELL],
                store=False,
                stream=True,
            )
            return list(stream)

    with trio.fail_after(20):
        events = await trio.to_thread.run_sync(run)
    types = [e.type for e in events]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    assert types.index("response.output_item.added") < types.index("response.output_text.delta")
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "from claude"
    completed = events[-1].response
    assert completed.id
    assert completed.usage is not None
    assert completed.usage.output_tokens > 0
    call = [item for item in completed.output if item.type == "function_call"]
    assert call
    assert call[0].name == "shell"
    assert json.loads(call[0].arguments) == {"cmd": "ls"}
    (key,) = served(env)
    sent = json.loads(env.sim(key).last_body)
    assert sent["model"] == MODEL
    assert sent["system"][0]["text"] == "Be brief."
    # Sent as what it is: never dressed up as Claude Code.
    assert "x-anthropic-billing-header" not in json.dumps(sent)
    assert not any("claude" in v.lower() for k, v in env.sim(key).last_headers if k == "user-agent")


async def test_openai_sdk_gets_one_response_object_when_not_streaming(claude_env: Env) -> None:
    """stream: false: the completed response object, output text and all."""
    env = claude_env
    env.state.scripts.add("claude", [Turn(items=(Message("whole"),))])

    def run() -> Any:
        with responses_client(env) as client:
            return client.responses.create(model=MODEL, input="hi", store=False)

    with trio.fail_after(20):
        response = await trio.to_thread.run_sync(run)
    assert response.output_text == "whole"
    assert response.status == "completed"


async def test_codex_on_claude_is_refused_without_the_opt_in(make_env: Callable[..., Any]) -> None:
    """Off by default: a Claude model from a Responses client is a 400 that names the
    switch and the risk, and no Claude account is used."""
    env: Env = await make_env(accounts=CLAUDE_ONLY)
    body = {"model": MODEL, "input": "hi", "stream": True}
    reply = await raw(env, "POST", "/v1/responses", body)
    assert reply.status == 400
    message = json.loads(reply.content)["error"]["message"]
    assert "codex_on_claude" in message
    assert all(a.requests == 0 for a in env.state.of("claude"))


async def test_a_websocket_upgrade_for_a_claude_model_gets_426(claude_env: Env) -> None:
    """Codex asks for its WebSocket with the model in its turn metadata: a Claude model is
    refused with 426, so Codex falls back to HTTP."""
    metadata = json.dumps({"model": MODEL, "turn_id": "t1"}).encode()
    headers = [*client_headers(), (b"x-codex-turn-metadata", metadata)]
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as caught:
        async with connect(url(claude_env), headers):
            pass
    assert caught.value.status_code == 426
