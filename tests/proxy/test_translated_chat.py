"""OpenAI Chat Completions clients and ``GET /v1/models`` on the pool (translation.md §5):
the official openai SDK through the proxy against the simulated Codex."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
import trio

from tests.proxy.conftest import Env
from tests.proxy.test_end_to_end import raw
from tests.proxy.test_translated_messages import CODEX_ONLY, header, served, upstream_body
from trio_pool.testing.turns import FunctionCall, HttpError, Message, Reasoning, Turn
from trio_pool.translate.local_answers import CLAUDE_MODELS, CODEX_MODELS

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"c": {"type": "integer"}}},
    },
}


@pytest.fixture
async def codex_env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(accounts=CODEX_ONLY)
    return env


def chat_client(env: Env) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{env.base}/v1", api_key="pool", max_retries=0, timeout=20)


async def test_openai_sdk_streams_chat_with_tool_call_deltas_and_usage(codex_env: Env) -> None:
    """A streamed chat completion from Codex: text, one tool call by index, finish_reason
    tool_calls, and the usage chunk asked for with include_usage (T37)."""
    env = codex_env
    turn = Turn(items=(Message("Hi"), FunctionCall("get_weather", '{"c":1}', call_id="call_1")))
    env.state.scripts.add("codex", [turn])

    def run() -> list[Any]:
        with chat_client(env) as client:
            stream = client.chat.completions.create(
                model="gpt-5",
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "weather?"},
                ],
                tools=[WEATHER],
                stream=True,
                stream_options={"include_usage": True},
                temperature=0.2,
                max_tokens=50,
            )
            return list(stream)

    with trio.fail_after(20):
        chunks = await trio.to_thread.run_sync(run)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    calls = [tc for c in chunks if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert text == "Hi"
    assert calls[0].id == "call_1"
    assert calls[0].function.name == "get_weather"
    assert "".join(tc.function.arguments or "" for tc in calls) == '{"c":1}'
    assert {tc.index for tc in calls} == {0}
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0
    (key,) = served(env)
    sent = upstream_body(env, key)
    assert sent["input"][0]["role"] == "developer"
    assert not {"temperature", "max_tokens", "max_output_tokens"} & set(sent)


async def test_openai_sdk_chat_without_streaming_gets_one_completion(codex_env: Env) -> None:
    """stream: false is one chat.completion with the reasoning summary beside the text."""
    env = codex_env
    turn = Turn(items=(Reasoning(summary=("thought",)), Message("Hello")))
    env.state.scripts.add("codex", [turn])

    def run() -> Any:
        with chat_client(env) as client:
            return client.chat.completions.create(
                model="gpt-5",
                messages=[{"role": "user", "content": "hi"}],
                reasoning_effort="low",
            )

    with trio.fail_after(20):
        completion = await trio.to_thread.run_sync(run)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gpt-5"
    assert completion.usage.prompt_tokens > 0


async def test_chat_for_an_unknown_model_is_refused_in_openai_shape(codex_env: Env) -> None:
    """A model neither Codex nor Claude serves is a 404 that says how to map it, never a
    silent re-route."""
    env = codex_env

    def run() -> openai.NotFoundError:
        with chat_client(env) as client:
            try:
                client.chat.completions.create(
                    model="llama-3", messages=[{"role": "user", "content": "hi"}]
                )
            except openai.NotFoundError as exc:
                return exc
        raise AssertionError("not refused")

    with trio.fail_after(20):
        error = await trio.to_thread.run_sync(run)
    assert "translate.models" in error.message
    assert all(a.requests == 0 for a in env.state.of("codex"))


async def test_chat_on_an_exhausted_pool_is_a_rate_limit_error_with_retry_after(
    codex_env: Env,
) -> None:
    """Every Codex account 429: the Chat client gets 429 rate_limit_error /
    rate_limit_exceeded and retry-after (T39)."""
    env = codex_env
    refusal = Turn(http_error=HttpError(429, resets_in_seconds=120))
    env.state.scripts.add("codex", [refusal], account="codex/a")
    env.state.scripts.add("codex", [refusal], account="codex/b")
    body = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}]}
    reply = await raw(env, "POST", "/v1/chat/completions", body)
    assert reply.status == 429
    error = json.loads(reply.content)["error"]
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "rate_limit_exceeded"
    assert 100 <= int(header(reply, "retry-after")) <= 120


async def test_models_are_listed_in_each_clients_format(codex_env: Env) -> None:
    """GET /v1/models: OpenAI's list without anthropic-version, Anthropic's with it, both
    naming the Codex models a Codex-only pool serves; Codex CLI's own call stays native."""
    env = codex_env
    openai_list = json.loads((await raw(env, "GET", "/v1/models")).content)
    assert openai_list["object"] == "list"
    assert [m["id"] for m in openai_list["data"]] == list(CODEX_MODELS)
    anthropic_reply = await raw(env, "GET", "/v1/models", **{"anthropic-version": "2023-06-01"})
    listed = json.loads(anthropic_reply.content)
    assert [m["id"] for m in listed["data"]] == list(CODEX_MODELS)
    assert listed["has_more"] is False
    assert not set(CLAUDE_MODELS) & {m["id"] for m in listed["data"]}
    assert all(a.requests == 0 for a in env.state.of("codex"))
    native = await raw(env, "GET", "/v1/models?client_version=0.169.0")
    assert json.loads(native.content) == {"models": []}
    assert sum(a.requests for a in env.state.of("codex")) == 1


async def test_openai_sdk_lists_models(codex_env: Env) -> None:
    """The openai SDK's models.list() reads the proxy's OpenAI-style list."""
    env = codex_env

    def run() -> list[str]:
        with chat_client(env) as client:
            return [m.id for m in client.models.list()]

    with trio.fail_after(20):
        ids = await trio.to_thread.run_sync(run)
    assert ids == list(CODEX_MODELS)
