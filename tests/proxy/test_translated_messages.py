"""Claude Code's API on a pool of Codex accounts only: the official anthropic SDK through the
proxy against the strict simulated Codex (translation.md §2, §3)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import anthropic
import attrs
import pytest
import trio

from tests.http_client import Reply
from tests.proxy.conftest import Env
from tests.proxy.test_end_to_end import raw
from trio_pool.proxy import translated_try
from trio_pool.testing.turns import FunctionCall, HttpError, Message, Reasoning, Turn

CODEX_ONLY = [("codex", "a"), ("codex", "b")]
MODEL = "gpt-5"
BASH: Any = {
    "name": "Bash",
    "description": "Run a command.",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
SESSION = {"x-claude-code-session-id": "sess-1"}


@pytest.fixture
async def codex_env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(accounts=CODEX_ONLY)
    return env


def claude_client(env: Env, **headers: str) -> anthropic.Anthropic:
    # A timeout of our own: the SDK refuses a non-streaming call with a large max_tokens
    # unless one is set (it would wait up to 10 minutes).
    return anthropic.Anthropic(
        base_url=env.base, auth_token="pool", max_retries=0, default_headers=headers, timeout=20
    )


def upstream_body(env: Env, key: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(env.sim(key).last_body)
    return body


def header(reply: Reply, name: str) -> str:
    found = [v for k, v in reply.headers if k.decode().lower() == name]
    return found[0].decode() if found else ""


def served(env: Env) -> list[str]:
    return [a.key for a in env.state.of("codex") if a.generations]


TOOL_TURN = Turn(
    items=(
        Reasoning("rs_1", None, ("plan",)),
        FunctionCall("Bash", '{"command":"echo hi"}', call_id="call_1"),
    )
)


async def test_anthropic_sdk_streams_a_tool_turn_with_thinking_from_codex(codex_env: Env) -> None:
    """A streamed Messages turn served by a Codex account: thinking carries a tp1 signature,
    the tool call arrives as tool_use with its input, and the client's model is echoed."""
    env = codex_env
    env.state.scripts.add("codex", [TOOL_TURN])

    def run() -> anthropic.types.Message:
        with (
            claude_client(env, **SESSION) as client,
            client.messages.stream(
                model=MODEL,
                max_tokens=32000,
                system=[{"type": "text", "text": "You are X"}],
                messages=[{"role": "user", "content": "run echo hi"}],
                tools=[BASH],
                thinking={"type": "enabled", "budget_tokens": 8192},
                extra_body={"temperature": 1.0, "top_k": 5},
            ) as stream,
        ):
            return stream.get_final_message()

    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(run)
    assert message.model == MODEL
    assert [b.type for b in message.content] == ["thinking", "tool_use"]
    thinking, tool = message.content
    assert thinking.type == "thinking"
    assert thinking.signature.startswith("tp1:codex:")
    assert thinking.thinking == "plan"
    assert tool.type == "tool_use"
    assert tool.name == "Bash"
    assert tool.input == {"command": "echo hi"}
    assert tool.id == "call_1"
    assert message.stop_reason == "tool_use"
    (key,) = served(env)
    sent = upstream_body(env, key)
    assert sent["store"] is False
    assert sent["stream"] is True
    assert sent["instructions"] == ""
    assert sent["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert not {"max_tokens", "temperature", "top_k", "max_output_tokens"} & set(sent)


async def test_anthropic_sdk_gets_one_json_message_when_not_streaming(codex_env: Env) -> None:
    """stream: false (Claude Code's fallback) is served from Codex's stream as one message."""
    env = codex_env
    env.state.scripts.add("codex", [Turn(items=(Message("Hello there"),))])

    def run() -> anthropic.types.Message:
        with claude_client(env) as client:
            return client.messages.create(
                model=MODEL, max_tokens=64000, messages=[{"role": "user", "content": "hi"}]
            )

    with trio.fail_after(20):
        message = await trio.to_thread.run_sync(run)
    assert message.type == "message"
    assert message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "Hello there"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


async def test_count_tokens_for_a_codex_model_is_answered_without_an_upstream(
    codex_env: Env,
) -> None:
    """count_tokens for a Codex-served model is counted locally: no account is asked."""
    env = codex_env

    def run() -> int:
        with claude_client(env) as client:
            counted = client.messages.count_tokens(
                model=MODEL,
                system="You are X",
                tools=[BASH],
                messages=[{"role": "user", "content": "hello " * 40}],
            )
            return counted.input_tokens

    with trio.fail_after(20):
        tokens = await trio.to_thread.run_sync(run)
    assert tokens > 60
    assert all(a.requests == 0 for a in env.state.of("codex"))


async def test_a_second_turn_replays_reasoning_and_tool_output_on_the_same_account(
    codex_env: Env,
) -> None:
    """Claude Code's next request, with the thinking block and tool result, reaches the
    account that issued the reasoning, as reasoning + function_call + output, same cache key."""
    env = codex_env
    env.state.scripts.add("codex", [TOOL_TURN, Turn(items=(Message("DONE"),))])

    def run() -> tuple[anthropic.types.Message, anthropic.types.Message]:
        with claude_client(env, **SESSION) as client:
            first = client.messages.create(
                model=MODEL,
                max_tokens=1000,
                messages=[{"role": "user", "content": "run echo hi"}],
                tools=[BASH],
                thinking={"type": "enabled", "budget_tokens": 2048},
            )
            tool = first.content[-1]
            assert tool.type == "tool_use"
            history: Any = [
                {"role": "user", "content": "run echo hi"},
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": tool.id, "content": "hi"}],
                },
            ]
            second = client.messages.create(
                model=MODEL,
                max_tokens=1000,
                tools=[BASH],
                thinking={"type": "enabled", "budget_tokens": 2048},
                messages=history,
            )
            return first, second

    with trio.fail_after(20):
        _, second = await trio.to_thread.run_sync(run)
    assert second.content[0].text == "DONE"  # type: ignore[union-attr]
    (key,) = served(env)
    sent = upstream_body(env, key)
    kinds = [item.get("type") for item in sent["input"]]
    assert kinds[-3:] == ["reasoning", "function_call", "function_call_output"]
    assert sent["input"][-3]["id"] == "rs_1"
    assert sent["input"][-1]["output"] == "hi"
    assert env.sim(key).generations == 2


async def test_every_codex_account_out_of_quota_gives_a_rate_limit_error(codex_env: Env) -> None:
    """Both accounts answer usage_limit_reached: Claude Code gets 429 rate_limit_error with
    the reset as retry-after (T39)."""
    env = codex_env
    env.state.scripts.add(
        "codex", [Turn(http_error=HttpError(429, resets_in_seconds=120))], account="codex/a"
    )
    env.state.scripts.add(
        "codex", [Turn(http_error=HttpError(429, resets_in_seconds=120))], account="codex/b"
    )
    env.state.scripts.add("codex", [Turn(items=(Message("served"),))])
    reply = await raw(
        env,
        "POST",
        "/v1/messages",
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        **{"anthropic-version": "2023-06-01"},
    )
    # Both accounts refused: the pool's answer, in Anthropic's shape, with retry-after.
    assert reply.status == 429
    body = json.loads(reply.content)
    assert body["type"] == "error"
    assert body["error"]["type"] == "rate_limit_error"
    assert 100 <= int(header(reply, "retry-after")) <= 120


async def test_one_429_fails_over_and_the_client_hears_only_the_answer(codex_env: Env) -> None:
    """A usage_limit_reached 429 from whichever account answers first moves the request on."""
    env = codex_env
    first = Turn(http_error=HttpError(429, resets_in_seconds=30))
    env.state.scripts.add("codex", [first, Turn(items=(Message("served"),))])
    reply = await raw(
        env,
        "POST",
        "/v1/messages",
        {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
        **{"anthropic-version": "2023-06-01"},
    )
    assert reply.status == 200, reply.content
    assert json.loads(reply.content)["content"] == [{"type": "text", "text": "served"}]
    assert sum(a.requests for a in env.state.of("codex")) == 2


def sse_events(content: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in content.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if "data" in lines:
            events.append((lines.get("event", ""), json.loads(lines["data"])))
    return events


STREAM_BODY = {
    "model": MODEL,
    "max_tokens": 10,
    "stream": True,
    "messages": [{"role": "user", "content": "hi"}],
}
ANTHROPIC = {"anthropic-version": "2023-06-01"}
RATE_LIMITED = {"code": "rate_limit_exceeded", "message": "Rate limit reached. Try again in 1.5s."}


async def test_a_failure_right_after_response_created_moves_to_another_account(
    codex_env: Env,
) -> None:
    """response.failed before any content: the client heard nothing, so the next account
    answers and the stream the client gets is whole (§0.6)."""
    env = codex_env
    env.state.scripts.add("codex", [Turn(end="failed", error=RATE_LIMITED)])
    env.state.scripts.add("codex", [Turn(items=(Message("second"),))])
    reply = await raw(env, "POST", "/v1/messages", STREAM_BODY, **ANTHROPIC)
    assert reply.status == 200
    events = sse_events(reply.content)
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names.count("message_start") == 1
    assert "error" not in names
    assert names[-1] == "message_stop"
    texts = [
        d["delta"]["text"] for n, d in events if d.get("delta", {}).get("type") == "text_delta"
    ]
    assert "".join(texts) == "second"
    assert sum(a.requests for a in env.state.of("codex")) == 2


async def test_a_failure_after_content_ends_the_stream_with_an_error_event(
    codex_env: Env,
) -> None:
    """Text already sent, then response.failed: the block is closed and an Anthropic error
    event ends the stream, with no message_stop (T29)."""
    env = codex_env
    turn = Turn(items=(Message("partial"),), end="failed", error=RATE_LIMITED)
    env.state.scripts.add("codex", [turn])
    reply = await raw(env, "POST", "/v1/messages", STREAM_BODY, **ANTHROPIC)
    events = sse_events(reply.content)
    names = [name for name, _ in events]
    assert names[-2:] == ["content_block_stop", "error"]
    assert "message_stop" not in names
    assert events[-1][1]["error"] == {
        "type": "rate_limit_error",
        "message": RATE_LIMITED["message"],
    }
    assert sum(a.requests for a in env.state.of("codex")) == 1


async def test_an_upstream_400_reaches_claude_code_as_an_invalid_request_error(
    codex_env: Env,
) -> None:
    """A Codex refusal that is not the account's fault is passed on in Anthropic's shape."""
    env = codex_env
    refusal = HttpError(400, "invalid_request_error", "Unsupported parameter: temperature")
    env.state.scripts.add("codex", [Turn(http_error=refusal)])
    reply = await raw(env, "POST", "/v1/messages", STREAM_BODY, **ANTHROPIC)
    assert reply.status == 400
    error = json.loads(reply.content)["error"]
    assert error["type"] == "invalid_request_error"
    assert "temperature" in error["message"]


async def test_a_silent_upstream_gets_pings_on_a_translated_stream(
    codex_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While Codex is silent after the first content, Claude Code gets `event: ping`
    (15 s in production; shortened here) and the stream still ends whole."""
    env = codex_env
    monkeypatch.setattr(translated_try, "PING_AFTER_S", 0.05)
    # The simulator's plain reply (scripted turns are sent at once), one event at a time.
    env.state.config = attrs.evolve(env.state.config, event_delay_s=0.12)
    with trio.fail_after(20):
        reply = await raw(env, "POST", "/v1/messages", STREAM_BODY, **ANTHROPIC)
    names = [name for name, _ in sse_events(reply.content)]
    assert "ping" in names
    assert names[0] == "message_start"
    assert names[-1] == "message_stop"


async def test_reasoning_is_left_out_when_the_conversation_moves_to_another_account(
    codex_env: Env,
) -> None:
    """The issuing account is out of quota: the next one gets the turn without the replayed
    reasoning (Codex refuses another account's encrypted_content) and answers."""
    env = codex_env
    env.state.scripts.add("codex", [TOOL_TURN])

    def turn(client: anthropic.Anthropic, messages: Any) -> anthropic.types.Message:
        return client.messages.create(
            model=MODEL,
            max_tokens=1000,
            tools=[BASH],
            thinking={"type": "enabled", "budget_tokens": 2048},
            messages=messages,
        )

    def first_turn() -> anthropic.types.Message:
        with claude_client(env, **SESSION) as client:
            return turn(client, [{"role": "user", "content": "run echo hi"}])

    with trio.fail_after(20):
        first = await trio.to_thread.run_sync(first_turn)
    (issuer,) = served(env)
    other = next(a.key for a in env.state.of("codex") if a.key != issuer)
    env.state.scripts.add(
        "codex", [Turn(http_error=HttpError(429, resets_in_seconds=60))], account=issuer
    )
    env.state.scripts.add("codex", [Turn(items=(Message("DONE"),))], account=other)
    tool_id = first.content[-1].id  # type: ignore[union-attr]
    history: Any = [
        {"role": "user", "content": "run echo hi"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "hi"}],
        },
    ]

    def second_turn() -> anthropic.types.Message:
        with claude_client(env, **SESSION) as client:
            return turn(client, history)

    with trio.fail_after(20):
        second = await trio.to_thread.run_sync(second_turn)
    assert second.content[0].text == "DONE"  # type: ignore[union-attr]
    kinds = [item.get("type") for item in upstream_body(env, other)["input"]]
    assert "reasoning" not in kinds
    assert kinds[-2:] == ["function_call", "function_call_output"]


async def test_the_ledger_books_a_translated_request_on_its_codex_account(
    codex_env: Env,
) -> None:
    """The row names the serving Codex account, the upstream model, its usage, and that the
    client spoke Messages."""
    env = codex_env
    env.state.scripts.add("codex", [Turn(items=(Message("booked"),))])
    reply = await raw(env, "POST", "/v1/messages", STREAM_BODY, **ANTHROPIC)
    assert reply.status == 200
    ledger = env.services.ledger
    assert ledger is not None
    (row,) = [r for r in ledger.buffer.take(100) if r.client_format == "messages"]
    (key,) = served(env)
    assert (row.provider, row.account, row.model, row.status) == ("codex", key, MODEL, 200)
    assert row.usage.output > 0
    assert row.attempts == 1
