"""The simulated Claude scripts thinking + tool_use turns, signs its thinking, and refuses
foreign signatures and unpaired tool blocks with Anthropic's texts."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.testing.sim_helpers import Sim, call, claude_headers, header, json_body, sse_events
from trio_pool.testing.turns import FunctionCall, HttpError, Message, Reasoning, Turn

BILLING = "x-anthropic-billing-header: cc_version=2.1.330.440; cc_entrypoint=cli; cch=00000;"
THINK_AND_CALL = Turn(
    items=(
        Reasoning(summary=("plan",)),
        FunctionCall("Bash", '{"command":"echo hi"}', call_id="toolu_1"),
    )
)


async def post(sim: Sim, http: HttpClient, messages: list[Any], stream: bool = True) -> Reply:
    body = {
        "model": "claude-opus-5-5",
        "max_tokens": 64,
        "stream": stream,
        "system": [{"type": "text", "text": BILLING}],
        "messages": messages,
    }
    with trio.fail_after(10):
        return await call(
            http, "POST", f"{sim.base}/v1/messages", claude_headers(sim.account("claude")), body
        )


def user(text: str = "run echo hi") -> dict[str, Any]:
    return {"role": "user", "content": text}


def result(tool_id: str = "toolu_1") -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "hi"}],
    }


def bash(tool_id: str = "toolu_1") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": "ls"}}


async def test_thinking_and_tool_use_turn_streams_the_real_events(
    sim: Sim, http: HttpClient
) -> None:
    """thinking (deltas, then signature_delta), tool_use (input_json_delta), stop tool_use."""
    sim.state.scripts.add("claude", [THINK_AND_CALL])
    events = sse_events((await post(sim, http, [user()])).content)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[1][1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    signature = events[5][1]["delta"]
    assert signature["type"] == "signature_delta"
    assert sim.state.scripts.signature_valid("plan", signature["signature"])
    assert events[7][1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Bash",
        "input": {},
    }
    partial = "".join(data["delta"]["partial_json"] for _, data in events[8:10])
    assert partial == '{"command": "echo hi"}'
    assert events[11][1]["delta"]["stop_reason"] == "tool_use"


async def test_non_streaming_turn_is_one_message(sim: Sim, http: HttpClient) -> None:
    """stream: false gets the same blocks in one JSON message."""
    sim.state.scripts.add("claude", [THINK_AND_CALL])
    message = json_body(await post(sim, http, [user()], stream=False))
    thinking, tool_use = message["content"]
    assert thinking["thinking"] == "plan"
    assert sim.state.scripts.signature_valid("plan", thinking["signature"])
    assert tool_use == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Bash",
        "input": {"command": "echo hi"},
    }
    assert message["stop_reason"] == "tool_use"


async def test_its_own_thinking_comes_back_valid(sim: Sim, http: HttpClient) -> None:
    """Turn 1's signed thinking and tool_use, answered by a tool_result, are served."""
    sim.state.scripts.add("claude", [THINK_AND_CALL, Turn(items=(Message("DONE"),), deltas=1)])
    first = json_body(await post(sim, http, [user()], stream=False))
    reply = await post(
        sim, http, [user(), {"role": "assistant", "content": first["content"]}, result()]
    )
    assert reply.status == 200
    assert "DONE" in reply.content.decode()


async def test_scripted_rate_limit_is_the_real_429(sim: Sim, http: HttpClient) -> None:
    """A scripted 429 rate_limit_error carries the unified rejected headers and retry-after."""
    error = HttpError(
        429, "rate_limit_error", "This request would exceed your account's rate limit.", 30
    )
    sim.state.scripts.add("claude", [Turn(http_error=error)])
    reply = await post(sim, http, [user()])
    assert reply.status == 429
    assert json_body(reply)["error"]["type"] == "rate_limit_error"
    assert header(reply, "anthropic-ratelimit-unified-status") == "rejected"
    assert header(reply, "retry-after") == "30"
    assert header(reply, "anthropic-ratelimit-unified-reset") == str(int(sim.clock.now) + 30)


GPT_SIGNATURE = "tp1:codex:cnNfMQ:gAAAAB"
REFUSED: list[tuple[str, list[Any], str]] = [
    (
        "foreign signature",
        [
            user(),
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": GPT_SIGNATURE}, {"type": "text", "text": "ok"}]},
            user("again"),
        ],
        "messages.1.content.0: Invalid `signature` in `thinking` block",
    ),
    (
        "missing signature",
        [user(), {"role": "assistant", "content": [{"type": "thinking", "thinking": "t"}, {"type": "text", "text": "ok"}]}, user("again")],
        "messages.1.content.0.thinking.signature: Field required",
    ),
    (
        "empty signature",
        [user(), {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": ""}, {"type": "text", "text": "ok"}]}, user("again")],
        "messages.1.content.0.thinking.signature: Field required",
    ),
    (
        "orphan tool_result",
        [user(), {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}, result("toolu_9")],
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9. "
        "Each `tool_result` block must have a corresponding `tool_use` block in the previous message.",
    ),
    (
        "tool_use without result",
        [user(), {"role": "assistant", "content": [bash("toolu_8")]}, user("again")],
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: "
        "toolu_8. Each `tool_use` block must have a corresponding `tool_result` block in the next message.",
    ),
    (
        "duplicate tool_use ids",
        [user(), {"role": "assistant", "content": [bash(), bash()]}, result()],
        "messages.1.content.1: `tool_use` ids must be unique",
    ),
    (
        "tool_use id alphabet",
        [user(), {"role": "assistant", "content": [bash("call:1")]}, result("call:1")],
        "messages.1.content.0.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'",
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("messages", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
async def test_claude_refuses_messages_the_real_api_refuses(
    sim: Sim, http: HttpClient, messages: list[Any], message: str
) -> None:
    """400 invalid_request_error with Anthropic's text for each message rule."""
    reply = await post(sim, http, messages)
    assert reply.status == 400
    assert json_body(reply)["error"] == {"type": "invalid_request_error", "message": message}


async def test_tool_use_in_the_last_turn_needs_no_result_yet(sim: Sim, http: HttpClient) -> None:
    """A tool_use answered by the next message's tool_result is served."""
    reply = await post(sim, http, [user(), {"role": "assistant", "content": [bash()]}, result()])
    assert reply.status == 200
