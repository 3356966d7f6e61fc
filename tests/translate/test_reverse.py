"""Codex CLI on Claude accounts: requests and streams, §8 vectors T33-T35 (§4)."""

from __future__ import annotations

from typing import Any

from tests.translate.captures import codex_lite_body
from tests.translate.helpers import claude, claude_block, claude_end, message_start, names, run
from trio_pool.translate.messages_stream_to_responses import MessagesToResponses
from trio_pool.translate.responses_to_messages import responses_to_messages
from trio_pool.translate.sse import OutEvent

CLAUDE_MODEL = "claude-opus-5-5"


def translate(body: dict[str, Any]) -> dict[str, Any]:
    return responses_to_messages(body, model=CLAUDE_MODEL).body


def of(out: list[OutEvent], kind: str) -> list[dict[str, Any]]:
    return [data for name, data in out if name == kind]


def test_t33_codex_lite_request_becomes_a_messages_request() -> None:
    """T33: 4 developer texts as system, flattened namespace tools, one merged user turn."""
    body = translate(codex_lite_body())
    assert [b["text"] for b in body["system"]] == [
        "You are Codex, a coding agent.",
        "<permissions instructions>sandbox: workspace-write</permissions instructions>",
        "<apps_instructions>none</apps_instructions>",
        "<collaboration_mode>default</collaboration_mode>",
    ]
    tools = {t["name"]: t for t in body["tools"]}
    assert list(tools) == ["functions__exec", "functions__wait"]
    assert tools["functions__exec"]["input_schema"] == {
        "type": "object",
        "properties": {"input": {"type": "string"}},
        "required": ["input"],
    }
    assert tools["functions__wait"]["input_schema"]["required"] == ["ms"]
    assert len(body["messages"]) == 1
    assert body["messages"][0]["role"] == "user"
    assert [b["text"] for b in body["messages"][0]["content"]][-1] == "say hi"
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


def test_t33_never_forges_claude_codes_identity() -> None:
    """No billing header, no Claude Code prompt prefix, no claude-code beta or user agent."""
    request = responses_to_messages(codex_lite_body(), model=CLAUDE_MODEL)
    text = repr(request.body) + repr(request.headers)
    assert "x-anthropic-billing-header" not in text
    assert "You are Claude Code" not in text
    assert "claude-code-2025" not in text
    assert "user-agent" not in dict(request.headers)
    assert dict(request.headers)["anthropic-version"] == "2023-06-01"
    for key in (
        "store",
        "include",
        "client_metadata",
        "text",
        "parallel_tool_calls",
        "prompt_cache_key",
    ):
        assert key not in request.body
    assert len(request.body["metadata"]["user_id"]) == 64


def test_t33_tool_history_is_paired_and_custom_input_wrapped() -> None:
    """Calls with outputs become tool_use + tool_result at the start of the next turn."""
    body = codex_lite_body()
    body["input"] += [
        {
            "type": "custom_tool_call",
            "call_id": "call_1",
            "namespace": "functions",
            "name": "exec",
            "input": "console.log(1)",
        },
        {
            "type": "function_call",
            "call_id": "call_2",
            "namespace": "functions",
            "name": "wait",
            "arguments": '{"ms":5}',
        },
        {"type": "function_call", "call_id": "call_3", "name": "lost", "arguments": "{}"},
        {"type": "custom_tool_call_output", "call_id": "call_1", "output": "1"},
        {"type": "function_call_output", "call_id": "call_2", "output": "first"},
        {
            "type": "function_call_output",
            "call_id": "call_2",
            "output": [{"type": "input_text", "text": "last"}],
        },
        {"type": "function_call_output", "call_id": "call_9", "output": "orphan"},
    ]
    messages = translate(body)["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == [
        {
            "type": "tool_use",
            "id": "call_1",
            "name": "functions__exec",
            "input": {"input": "console.log(1)"},
        },
        {"type": "tool_use", "id": "call_2", "name": "functions__wait", "input": {"ms": 5}},
    ]
    assert messages[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "1"},
        {
            "type": "tool_result",
            "tool_use_id": "call_2",
            "content": [{"type": "text", "text": "last"}],
        },
    ]


def test_t34_custom_tool_call_comes_back_as_custom_with_namespace_and_usage() -> None:
    """T34: tool_use functions__exec -> custom_tool_call exec/functions; completed has id."""
    request = responses_to_messages(codex_lite_body(), model=CLAUDE_MODEL)
    tool = {"type": "tool_use", "id": "toolu_1", "name": "functions__exec", "input": {}}
    partials = [
        {"type": "input_json_delta", "partial_json": '{"input":"console'},
        {"type": "input_json_delta", "partial_json": '.log(1)"}'},
    ]
    events = [
        message_start(input_tokens=10, cache_creation_input_tokens=5, cache_read_input_tokens=100),
        *claude_block(0, tool, partials),
        *claude_end("tool_use", output_tokens=7),
    ]
    out = run(MessagesToResponses("gpt-6.1-sol", request.tools), events)
    (added,) = [d["item"] for d in of(out, "response.output_item.added")]
    assert added == {
        "id": added["id"],
        "type": "custom_tool_call",
        "status": "in_progress",
        "call_id": "toolu_1",
        "name": "exec",
        "input": "",
        "namespace": "functions",
    }
    (done,) = [d["item"] for d in of(out, "response.output_item.done")]
    assert done["input"] == "console.log(1)"
    assert not of(out, "response.custom_tool_call_input.delta")  # the JSON wrapper never leaks
    (complete,) = of(out, "response.completed")
    assert complete["response"]["id"].startswith("resp_")
    assert complete["response"]["output"] == [done]
    assert complete["response"]["usage"] == {
        "input_tokens": 115,
        "input_tokens_details": {"cached_tokens": 100},
        "output_tokens": 7,
        "total_tokens": 122,
    }
    assert [d["sequence_number"] for _, d in out] == list(range(len(out)))


def test_t34_text_and_function_calls_stream_as_codex_expects() -> None:
    """Text: item added, part, deltas, done with the full text; function args stream."""
    text = claude_block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hi"}])
    call = claude_block(
        1,
        {"type": "tool_use", "id": "toolu_2", "name": "shell", "input": {}},
        [{"type": "input_json_delta", "partial_json": '{"c":1}'}],
    )
    out = run(
        MessagesToResponses("gpt-6.1-sol"), [message_start(), *text, *call, *claude_end("tool_use")]
    )
    assert names(out)[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    items = [d["item"] for d in of(out, "response.output_item.done")]
    assert items[0]["content"] == [{"type": "output_text", "text": "Hi", "annotations": []}]
    assert items[1]["type"] == "function_call"
    assert items[1]["call_id"] == "toolu_2"
    assert items[1]["arguments"] == '{"c":1}'
    assert of(out, "response.function_call_arguments.delta")[0]["delta"] == '{"c":1}'


def test_t35_claude_thinking_round_trips_through_encrypted_content() -> None:
    """T35: thinking -> reasoning (signature in encrypted_content) -> thinking again."""
    block = claude_block(
        0,
        {"type": "thinking", "thinking": ""},
        [
            {"type": "thinking_delta", "thinking": "t"},
            {"type": "signature_delta", "signature": "EqQBCkYI"},
        ],
    )
    out = run(MessagesToResponses("gpt-6.1-sol"), [message_start(), *block, *claude_end()])
    (item,) = [d["item"] for d in of(out, "response.output_item.done")]
    assert item["encrypted_content"] == "EqQBCkYI"
    assert item["summary"] == [{"type": "summary_text", "text": "t"}]
    body = codex_lite_body()
    body["input"] += [
        item,
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok"}],
        },
    ]
    messages = translate(body)["messages"]
    assert messages[-1]["content"][0] == {
        "type": "thinking",
        "thinking": "t",
        "signature": "EqQBCkYI",
    }


def test_t35_codex_reasoning_is_dropped_on_the_way_to_claude() -> None:
    """T35: a reasoning item with OpenAI's gAAAA content never reaches Claude."""
    body = codex_lite_body()
    body["input"] += [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAABx"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok"}],
        },
    ]
    assert translate(body)["messages"][-1]["content"] == [{"type": "text", "text": "ok"}]


def test_redacted_thinking_round_trips() -> None:
    """redacted_thinking travels as claude-redacted-thinking:<data> and comes back."""
    block = claude_block(0, {"type": "redacted_thinking", "data": "abc"}, [])
    out = run(MessagesToResponses("gpt-6.1-sol"), [message_start(), *block, *claude_end()])
    (item,) = [d["item"] for d in of(out, "response.output_item.done")]
    assert item["encrypted_content"] == "claude-redacted-thinking:abc"
    body = codex_lite_body()
    body["input"] += [
        item,
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "ok"}],
        },
    ]
    assert translate(body)["messages"][-1]["content"][0] == {
        "type": "redacted_thinking",
        "data": "abc",
    }


def test_max_tokens_and_errors_end_the_codex_stream_as_failures() -> None:
    """max_tokens -> response.incomplete; a Claude error -> response.failed with a Codex code."""
    text = claude_block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "x"}])
    out = run(MessagesToResponses("m"), [message_start(), *text, *claude_end("max_tokens")])
    assert of(out, "response.incomplete")[0]["response"]["incomplete_details"] == {
        "reason": "max_output_tokens"
    }
    error = claude("error", error={"type": "overloaded_error", "message": "Overloaded"})
    out = run(MessagesToResponses("m"), [message_start(), error])
    failed = of(out, "response.failed")[0]["response"]
    assert failed["error"] == {"code": "server_is_overloaded", "message": "Overloaded"}
    assert failed["id"].startswith("resp_")


def test_eof_without_message_stop_fails_rather_than_completes() -> None:
    """A truncated Claude stream is response.failed server_error, never a silent success."""
    text = claude_block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "x"}])
    out = run(MessagesToResponses("m"), [message_start(), *text])
    assert names(out)[-1] == "response.failed"
    assert out[-1][1]["response"]["error"]["code"] == "server_error"


def test_reasoning_effort_maps_to_claude_thinking() -> None:
    """Adaptive models get output_config.effort; older ones a token budget below max_tokens."""
    body = codex_lite_body()
    body["reasoning"] = {"effort": "xhigh"}
    adaptive = translate(body)
    assert adaptive["thinking"] == {"type": "adaptive"}
    assert adaptive["output_config"] == {"effort": "max"}
    old = responses_to_messages({**body, "max_output_tokens": 4000}, model="claude-sonnet-4-5").body
    assert old["thinking"] == {"type": "enabled", "budget_tokens": 3999}
    assert old["max_tokens"] == 4000
    body["reasoning"] = {"effort": "none"}
    assert "thinking" not in translate(body)
