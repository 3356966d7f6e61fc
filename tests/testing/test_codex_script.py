"""Scripted Codex turns stream the real event sequence, per account, conversation or match."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.testing.sim_helpers import Sim, call, codex_headers, header, json_body, sse_events
from tests.testing.test_websocket import auth, connect, create, turn, ws_url
from trio_pool.cli import main
from trio_pool.testing.issue import new_account
from trio_pool.testing.scripts import TurnScripts, read_script
from trio_pool.testing.turns import (
    CustomToolCall,
    FunctionCall,
    HttpError,
    Message,
    Reasoning,
    ScriptError,
    Turn,
    Usage,
    turn_from_json,
)

BODY: dict[str, Any] = {
    "model": "gpt-5",
    "instructions": "",
    "store": False,
    "stream": True,
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]}
    ],
}
TOOL_TURN = Turn(
    items=(
        Reasoning("rs_1", "E1", ("plan",)),
        FunctionCall("Bash", '{"command":"echo hi"}', call_id="call_1"),
    ),
    usage=Usage(input_tokens=100, cached_tokens=80, output_tokens=7, reasoning_tokens=3),
)


async def post(sim: Sim, http: HttpClient, body: dict[str, Any] | None = None, **kw: Any) -> Reply:
    headers = codex_headers(kw.pop("account", sim.account("codex")))
    headers += list(kw.pop("headers", []))
    with trio.fail_after(10):
        return await call(
            http, "POST", f"{sim.base}/backend-api/codex/responses", headers, body or BODY
        )


def kinds(reply: Reply) -> list[str]:
    return [data["type"] for _, data in sse_events(reply.content)]


async def test_reasoning_and_call_turn_streams_the_real_events(sim: Sim, http: HttpClient) -> None:
    """Reasoning (summary parts and deltas, encrypted_content only when done), then a call with
    argument deltas, then response.completed with cached and reasoning token details."""
    sim.state.scripts.add("codex", [TOOL_TURN])
    reply = await post(sim, http)
    events = [data for _, data in sse_events(reply.content)]
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert "encrypted_content" not in events[2]["item"]
    assert events[8]["item"] == {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "plan"}],
        "encrypted_content": "E1",
    }
    call = events[13]["item"]
    assert (call["call_id"], call["name"], call["arguments"]) == (
        "call_1",
        "Bash",
        '{"command":"echo hi"}',
    )
    assert "".join(e["delta"] for e in events[10:12]) == '{"command":"echo hi"}'
    completed = events[-1]["response"]
    assert completed["output"] == [events[8]["item"], call]
    assert completed["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 80},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 107,
    }
    assert sim.state.scripts.issued_by("codex/a", "E1")


async def test_interleaved_calls_custom_call_and_text(sim: Sim, http: HttpClient) -> None:
    """Two calls' argument deltas alternate; a custom tool call streams its input; text last."""
    script = Turn(
        items=(
            FunctionCall("Read", '{"path":"a"}', call_id="c_a"),
            FunctionCall("Bash", '{"command":"ls"}', call_id="c_b"),
            CustomToolCall("apply_patch", "*** Begin Patch", call_id="c_p"),
            Message("done"),
        ),
        interleave_calls=True,
    )
    sim.state.scripts.add("codex", [script])
    events = [data for _, data in sse_events((await post(sim, http)).content)]
    middle = [(e["type"].removeprefix("response."), e.get("output_index")) for e in events[2:-1]]
    assert middle[:12] == [
        ("output_item.added", 0),
        ("output_item.added", 1),
        ("output_item.added", 2),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.delta", 1),
        ("custom_tool_call_input.delta", 2),
        ("function_call_arguments.delta", 0),
        ("function_call_arguments.delta", 1),
        ("custom_tool_call_input.delta", 2),
        ("function_call_arguments.done", 0),
        ("output_item.done", 0),
        ("function_call_arguments.done", 1),
    ]
    done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
    assert [d["type"] for d in done] == [
        "function_call",
        "function_call",
        "custom_tool_call",
        "message",
    ]
    assert done[2]["input"] == "*** Begin Patch"
    assert done[3]["content"][0]["text"] == "done"
    assert events[-1]["type"] == "response.completed"


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            Turn(
                end="failed", error={"code": "rate_limit_exceeded", "message": "try again in 1.5s"}
            ),
            ["response.created", "response.in_progress", "response.failed"],
        ),
        (
            Turn(items=(Message("cut"),), end="incomplete"),
            ["response.created", "response.in_progress", "response.output_item.added"],
        ),
        (
            Turn(items=(Message("x"),), drop_first_events=2, deltas=1),
            [
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ],
        ),
    ],
    ids=["failed after created", "incomplete", "first events dropped"],
)
async def test_failure_scripts_stream_their_events(
    sim: Sim, http: HttpClient, script: Turn, expected: list[str]
) -> None:
    """response.failed right after the handshake, response.incomplete, a headless stream."""
    sim.state.scripts.add("codex", [script])
    events = [data for _, data in sse_events((await post(sim, http)).content)]
    assert [e["type"] for e in events][: len(expected)] == expected
    last = events[-1].get("response", {})
    if script.end == "failed":
        assert last["error"] == {"code": "rate_limit_exceeded", "message": "try again in 1.5s"}
    if script.end == "incomplete":
        assert events[-1]["type"] == "response.incomplete"
        assert last["incomplete_details"] == {"reason": "max_output_tokens"}


async def test_scripted_usage_limit_is_the_real_429(sim: Sim, http: HttpClient) -> None:
    """429 usage_limit_reached with resets_in_seconds, a retry-after and the quota headers."""
    sim.state.scripts.add("codex", [Turn(http_error=HttpError(resets_in_seconds=30))])
    reply = await post(sim, http)
    assert reply.status == 429
    assert json_body(reply) == {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": sim.account("codex").plan,
            "resets_in_seconds": 30,
        }
    }
    assert header(reply, "retry-after") == "30"
    assert header(reply, "x-codex-primary-used-percent") is not None


async def test_scripts_apply_per_conversation_account_and_match(sim: Sim, http: HttpClient) -> None:
    """A conversation's script wins over the account's; a head with `match` waits for a body
    that contains it; everything else gets the plain reply."""
    scripts = sim.state.scripts
    scripts.add("codex", [Turn(items=(Message("account"),))], account="codex/a")
    scripts.add("codex", [Turn(items=(Message("conv"),))], conversation="K1")
    scripts.add("codex", [Turn(items=(Message("matched"),), match="magic word")])

    async def text(body: dict[str, Any]) -> str:
        events = [data for _, data in sse_events((await post(sim, http, body)).content)]
        return "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")

    assert await text({**BODY, "prompt_cache_key": "K1"}) == "conv"
    assert await text(BODY) == "account"
    assert await text(BODY) == "Hello from the trio-pool simulator."
    magic = {
        **BODY,
        "input": [
            {**BODY["input"][0], "content": [{"type": "input_text", "text": "the magic word"}]}
        ],
    }
    assert await text(magic) == "matched"
    assert scripts.pending("codex") == 0


async def test_encrypted_content_is_only_taken_back_by_its_account(
    sim: Sim, http: HttpClient
) -> None:
    """Turn 1's reasoning replayed in turn 2 is served on the issuing account and refused on
    another one (another org cannot decrypt it)."""
    other = sim.state.add(new_account("codex", "b", now=sim.clock.now))
    sim.state.scripts.add("codex", [TOOL_TURN, Turn(items=(Message("DONE"),))], account="codex/a")
    await post(sim, http)
    replay = {
        **BODY,
        "input": [
            *BODY["input"],
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "E1"},
            {"type": "function_call", "call_id": "call_1", "name": "Bash", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_1", "output": "hi"},
        ],
    }
    refused = await post(sim, http, replay, account=other)
    served = await post(sim, http, replay)
    assert refused.status == 400
    assert json_body(refused)["error"]["code"] == "invalid_encrypted_content"
    assert served.status == 200
    assert "DONE" in served.content.decode()


async def test_websocket_plays_scripted_turns_as_frames(sim: Sim) -> None:
    """Over the WebSocket a scripted turn is the same events, one frame each."""
    sim.state.scripts.add("codex", [TOOL_TURN])
    with trio.fail_after(10):
        async with connect(ws_url(sim), auth(sim.account("codex"))) as ws:
            frames = await turn(ws, create(input=BODY["input"]))
    types = [f["type"] for f in frames]
    assert types[0] == "codex.rate_limits"
    assert types[1:3] == ["response.created", "response.in_progress"]
    assert "response.function_call_arguments.delta" in types
    assert types[-1] == "response.completed"


def test_json_turn_is_the_python_turn() -> None:
    """The file form parses to the same values as the Python form."""
    parsed = turn_from_json(
        {
            "items": [
                {"type": "reasoning", "id": "rs_1", "encrypted_content": "E1", "summary": ["plan"]},
                {"type": "function_call", "name": "Bash", "call_id": "call_1",
                 "arguments": {"command": "echo hi"}},
            ],
            "usage": {"input_tokens": 100, "cached_tokens": 80, "output_tokens": 7,
                      "reasoning_tokens": 3},
        }
    )  # fmt: skip
    assert parsed == Turn(
        items=(TOOL_TURN.items[0], FunctionCall("Bash", '{"command": "echo hi"}', "call_1")),
        usage=TOOL_TURN.usage,
    )


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (
            {"codex": {"default": [{"items": [{"type": "video"}]}]}},
            "codex.default[0]: unknown scripted item",
        ),
        ({"gemini": {}}, "unknown providers"),
        ({"codex": {"default": [{"itemz": []}]}}, "unknown keys in a scripted turn: itemz"),
        ({"claude": {"accounts": {"claude/a": {}}}}, "must be a list of turns"),
    ],
)
def test_bad_scripts_are_refused_whole(document: Any, problem: str) -> None:
    """A malformed script raises ScriptError naming the place and queues nothing."""
    scripts = TurnScripts()
    with pytest.raises(ScriptError, match=re.escape(problem)):
        scripts.load(document)
    assert scripts.pending("codex") == scripts.pending("claude") == 0


def test_script_file_loads_and_demo_refuses_a_bad_one(tmp_path: Path, capsys: Any) -> None:
    """read_script + load queue a file's turns; `demo --sim-script` stops on a bad file."""
    good = tmp_path / "script.json"
    good.write_text(
        json.dumps(
            {
                "codex": {
                    "accounts": {"codex/ada": [{"items": [{"type": "message", "text": "x"}]}]}
                },
                "claude": {
                    "default": [{"http_error": {"status": 529, "type": "overloaded_error"}}]
                },
            }
        )
    )
    scripts = TurnScripts()
    scripts.load(read_script(good))
    assert (scripts.pending("codex"), scripts.pending("claude")) == (1, 1)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["demo", "--sim-script", str(bad)]) == 2
    assert "is not JSON" in capsys.readouterr().err
