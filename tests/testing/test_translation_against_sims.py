"""Cross-check: what trio_pool.translate builds is what the strict simulators accept, and
its stream machines turn the simulators' scripted streams into well-formed streams.

Not a replacement for tests/translate: these only prove the two sides agree.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.testing.sim_helpers import Sim, call, claude_headers, codex_headers, json_body
from tests.translate.captures import claude_code_oauth_body
from trio_pool.providers.sse import SseParser
from trio_pool.testing.accounts import SimAccount
from trio_pool.testing.issue import new_account
from trio_pool.testing.turns import FunctionCall, Message, Reasoning, Turn
from trio_pool.translate.aggregate import MessageAssembler
from trio_pool.translate.messages_stream_to_responses import MessagesToResponses
from trio_pool.translate.messages_to_responses import messages_to_responses
from trio_pool.translate.responses_stream_to_messages import ResponsesToMessages
from trio_pool.translate.signatures import strip_foreign_thinking
from trio_pool.translate.sse import Event, OutEvent, decode

MODEL = "gpt-5"
CLIENT_MODEL = "claude-opus-5-5"
BILLING = "x-anthropic-billing-header: cc_version=2.1.330.440; cc_entrypoint=cli; cch=00000;"
BASH = {
    "name": "Bash",
    "description": "Run a command.",
    "input_schema": {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"command": {"type": "string"}, "timeout": {"type": "number"}},
        "required": ["command"],
        "additionalProperties": False,
    },
}
ARTIFACT = {
    "name": "Artifact",
    "input_schema": {
        "type": "object",
        "properties": {
            "path": {"type": "string", "pattern": "^(?!__.*__$)[^\\p{Cc}]{1,200}$"},
            "kind": {"type": "string", "pattern": "^[a-z]+$"},
        },
    },
}


def messages_body(
    messages: list[Any], tools: Sequence[Any] = (BASH,), **extra: Any
) -> dict[str, Any]:
    return {
        "model": CLIENT_MODEL,
        "max_tokens": 32000,
        "stream": True,
        "system": [{"type": "text", "text": BILLING}, {"type": "text", "text": "You are X"}],
        "messages": messages,
        "tools": list(tools),
        **extra,
    }


def tool_use(tool_id: str, command: str = "ls") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": command}}


def tool_result(tool_id: str, text: str = "a\nb") -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": text}


LONG_MCP = [{"name": "mcp__" + "a" * 70 + "__read"}, {"name": "mcp__" + "b" * 70 + "__read"}]
VECTORS: list[tuple[str, dict[str, Any]]] = [
    ("CAP claude code body", claude_code_oauth_body()),
    (
        "T3 unsupported parameters",
        messages_body(
            [{"role": "user", "content": "hi"}],
            temperature=0.2, top_p=0.9, top_k=5, stop_sequences=["x"],
            metadata={"user_id": "u"}, context_management={"edits": []},
        ),
    ),
    (
        "T10 paired tool use",
        messages_body(
            [
                {"role": "user", "content": "run"},
                {"role": "assistant", "content": [{"type": "text", "text": "run"}, tool_use("toolu_1")]},
                {"role": "user", "content": [tool_result("toolu_1")]},
            ]
        ),
    ),
    ("T14 regex patterns", messages_body([{"role": "user", "content": "hi"}], tools=[ARTIFACT])),
    ("T16 long mcp names", messages_body([{"role": "user", "content": "hi"}], tools=LONG_MCP)),
    (
        "T19 foreign and empty signatures",
        messages_body(
            [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "thinking", "thinking": "", "signature": "EqQBCkYIBRgCKkA"},
                        {"type": "thinking", "thinking": "", "signature": ""},
                        tool_use("toolu_1"),
                    ],
                },
                {"role": "user", "content": [tool_result("toolu_1")]},
            ]
        ),
    ),
    (
        "T20 orphans",
        messages_body(
            [
                {"role": "user", "content": [tool_result("toolu_9")]},
                {"role": "assistant", "content": [tool_use("toolu_8")]},
                {"role": "user", "content": "next"},
            ]
        ),
    ),
    (
        "T21 duplicate tool_use",
        messages_body(
            [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [tool_use("toolu_1"), tool_use("toolu_1")]},
                {"role": "user", "content": [tool_result("toolu_1")]},
            ]
        ),
    ),
]  # fmt: skip


async def codex_post(
    sim: Sim, http: HttpClient, body: dict[str, Any], account: SimAccount | None = None
) -> Reply:
    translated = messages_to_responses(body, model=MODEL)
    headers = codex_headers(account or sim.account("codex"))
    headers += [(k, v) for k, v in translated.headers if k not in ("content-type", "accept")]
    with trio.fail_after(10):
        return await call(
            http, "POST", f"{sim.base}/backend-api/codex/responses", headers, translated.body
        )


@pytest.mark.parametrize("body", [v[1] for v in VECTORS], ids=[v[0] for v in VECTORS])
async def test_translated_requests_are_accepted_by_the_simulated_codex(
    sim: Sim, http: HttpClient, body: dict[str, Any]
) -> None:
    """Every spec vector, translated by messages_to_responses, passes the backend's rules."""
    reply = await codex_post(sim, http, body)
    assert reply.status == 200, reply.content


def parse(content: bytes) -> list[Event]:
    parser = SseParser()
    return [decode(e.event, e.data) for e in parser.feed(content)]


def to_messages(content: bytes) -> list[OutEvent]:
    machine = ResponsesToMessages(CLIENT_MODEL)
    out = [o for event in parse(content) for o in machine.feed(event)]
    return out + machine.finish()


def assert_well_formed_messages(events: list[OutEvent]) -> None:
    """message_start first; blocks opened and closed one at a time with rising indices;
    message_delta then message_stop last."""
    names = [name for name, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    open_index: int | None = None
    next_index = 0
    for name, data in events[1:-2]:
        if name == "content_block_start":
            assert open_index is None
            assert data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert open_index is None


def assistant_turn(events: list[OutEvent]) -> dict[str, Any]:
    assembler = MessageAssembler()
    assembler.add(events)
    reply = assembler.reply()
    assert reply.status == 200
    return {"role": "assistant", "content": reply.body["content"]}


async def test_tool_turn_round_trips_through_translation(sim: Sim, http: HttpClient) -> None:
    """§9.1 at the simulator: turn 1 (reasoning rs_1/E1 + Bash) becomes thinking + tool_use;
    turn 2 replays rs_1/E1 before the call and its output, is served on the issuing account
    (text DONE) and refused on another; the conversation then goes back to Claude once the
    Codex thinking is stripped, and is refused with it."""
    turn_1 = Turn(
        items=(
            Reasoning("rs_1", "E1", ("plan",)),
            FunctionCall("Bash", '{"command":"echo hi"}', call_id="call_1"),
        )
    )
    sim.state.scripts.add("codex", [turn_1, Turn(items=(Message("DONE"),))], account="codex/a")
    ask = {"role": "user", "content": "run echo hi"}
    first = to_messages((await codex_post(sim, http, messages_body([ask]))).content)
    assert_well_formed_messages(first)
    assert first[-2][1]["delta"]["stop_reason"] == "tool_use"
    answer = assistant_turn(first)
    thinking, call_block = answer["content"]
    assert thinking["signature"] == "tp1:codex:cnNfMQ:E1"
    assert (call_block["id"], call_block["input"]) == ("call_1", {"command": "echo hi"})

    conversation = [ask, answer, {"role": "user", "content": [tool_result("call_1", "hi")]}]
    second_body = messages_body(conversation)
    items = messages_to_responses(second_body, model=MODEL).body["input"]
    kinds = [i["type"] for i in items]
    assert kinds[-3:] == ["reasoning", "function_call", "function_call_output"]
    other = sim.state.add(new_account("codex", "b", now=sim.clock.now))
    refused = await codex_post(sim, http, second_body, account=other)
    assert json_body(refused)["error"]["code"] == "invalid_encrypted_content"
    second = to_messages((await codex_post(sim, http, second_body)).content)
    assert_well_formed_messages(second)
    text = "".join(d["delta"].get("text", "") for n, d in second if n == "content_block_delta")
    assert text == "DONE"

    back = messages_body(
        [*conversation, assistant_turn(second), {"role": "user", "content": "now claude"}]
    )
    stripped = strip_foreign_thinking(back)
    assert stripped is not None
    url = f"{sim.base}/v1/messages"
    headers = claude_headers(sim.account("claude"))
    with trio.fail_after(10):
        served = await call(http, "POST", url, headers, stripped)
        refused_claude = await call(http, "POST", url, headers, back)
    assert served.status == 200, served.content
    assert json_body(refused_claude)["error"]["message"] == (
        "messages.1.content.0: Invalid `signature` in `thinking` block"
    )


async def test_interleaved_and_failed_streams_translate_cleanly(sim: Sim, http: HttpClient) -> None:
    """Interleaved calls come out one block at a time; a failure after the handshake becomes
    one `error` event and nothing else."""
    calls = Turn(
        items=(FunctionCall("Bash", '{"command":"a"}'), FunctionCall("Bash", '{"command":"b"}')),
        interleave_calls=True,
    )
    failed = Turn(
        end="failed", error={"code": "rate_limit_exceeded", "message": "try again in 1.5s"}
    )
    sim.state.scripts.add("codex", [calls, failed])
    body = messages_body([{"role": "user", "content": "go"}])
    events = to_messages((await codex_post(sim, http, body)).content)
    assert_well_formed_messages(events)
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["tool_use", "tool_use"]
    failure = to_messages((await codex_post(sim, http, body)).content)
    assert [n for n, _ in failure] == ["message_start", "error"]
    assert failure[-1][1]["error"] == {"type": "rate_limit_error", "message": "try again in 1.5s"}


async def test_claude_scripted_stream_translates_to_a_responses_stream(
    sim: Sim, http: HttpClient
) -> None:
    """The opt-in Codex-CLI-on-Claude path: Claude's thinking + tool_use stream becomes
    reasoning (Claude's signature as encrypted_content) and a function_call, completed with
    an id."""
    sim.state.scripts.add(
        "claude",
        [
            Turn(
                items=(
                    Reasoning(summary=("plan",)),
                    FunctionCall("wait", '{"ms":1}', call_id="toolu_1"),
                )
            )
        ],
    )
    body = messages_body([{"role": "user", "content": "go"}], tools=[])
    with trio.fail_after(10):
        reply = await call(
            http, "POST", f"{sim.base}/v1/messages", claude_headers(sim.account("claude")), body
        )
    machine = MessagesToResponses("gpt-5")
    out = [o for event in parse(reply.content) for o in machine.feed(event)] + machine.finish()
    kinds = [data["type"] for _, data in out]
    assert kinds[0] == "response.created"
    assert kinds[-1] == "response.completed"
    done = [data["item"] for _, data in out if data["type"] == "response.output_item.done"]
    reasoning, function_call = done
    assert sim.state.scripts.signature_valid("plan", reasoning["encrypted_content"])
    assert (function_call["call_id"], json.loads(function_call["arguments"])) == (
        "toolu_1",
        {"ms": 1},
    )
    assert out[-1][1]["response"]["id"]


def test_vectors_are_not_changed_by_translation() -> None:
    """The vectors are shared: translating must not mutate them (guards the other tests)."""
    before = copy.deepcopy(VECTORS)
    for _, body in VECTORS:
        messages_to_responses(body, model=MODEL)
    assert before == VECTORS
