"""Chat Completions on either provider: §8 vectors T37, T38 (§5)."""

from __future__ import annotations

import json
from typing import Any

from tests.translate.helpers import (
    call_item,
    claude_block,
    claude_end,
    completed,
    created,
    message_start,
    run,
    text_item,
)
from trio_pool.translate.aggregate import ChatAssembler
from trio_pool.translate.chat_request import chat_to_claude, chat_to_codex
from trio_pool.translate.chat_stream import MessagesToChat, ResponsesToChat
from trio_pool.translate.codex_rules import UNSUPPORTED
from trio_pool.translate.sse import DONE, OutEvent, encode_all

USAGE = {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 3}


def chunks(out: list[OutEvent]) -> list[dict[str, Any]]:
    return [data for name, data in out if name != DONE]


def test_t37_chat_stream_with_text_tool_call_and_usage() -> None:
    """T37: role+content, tool_call start and arguments, finish tool_calls, usage, [DONE]."""
    events = [
        created(),
        *text_item("Hi"),
        *call_item("call_1", "get_weather", '{"c":1}', 1),
        completed(USAGE),
    ]
    out = run(ResponsesToChat("gpt-6.1-sol", created=1700000000, include_usage=True), events)
    deltas = [c["choices"][0]["delta"] for c in chunks(out) if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": "Hi"}
    assert deltas[1] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    assert deltas[2] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"c":1}'}}]}
    final = [c for c in chunks(out) if c["choices"]][-1]
    assert final["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "tool_calls"}
    usage_chunk = chunks(out)[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 10
    assert usage_chunk["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert all(c["usage"] is None for c in chunks(out)[:-1])
    assert out[-1] == (DONE, {})
    assert encode_all(out).endswith(b"data: [DONE]\n\n")
    assert all(
        c["object"] == "chat.completion.chunk" and c["created"] == 1700000000 for c in chunks(out)
    )


def test_t37_no_usage_chunk_without_include_usage() -> None:
    """T37: without include_usage no usage field and no usage chunk."""
    out = run(ResponsesToChat("m"), [created(), *text_item("Hi"), completed(USAGE)])
    assert all("usage" not in c for c in chunks(out))
    assert chunks(out)[-1]["choices"][0]["finish_reason"] == "stop"


def test_t37_non_streaming_chat_answer() -> None:
    """A stream:false Chat client gets one chat.completion with content and tool_calls."""
    events = [
        created(),
        *text_item("Hi"),
        *call_item("call_1", "f", '{"c":1}', 1),
        completed(USAGE),
    ]
    assembler = ChatAssembler()
    assembler.add(run(ResponsesToChat("m", include_usage=True), events))
    reply = assembler.reply()
    assert reply.status == 200
    choice = reply.body["choices"][0]
    assert reply.body["object"] == "chat.completion"
    assert choice["message"]["content"] == "Hi"
    assert choice["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"c":1}'}}
    ]
    assert choice["finish_reason"] == "tool_calls"
    assert reply.body["usage"]["completion_tokens"] == 3


def test_chat_stream_failure_is_an_error_chunk_then_done() -> None:
    """A failed upstream ends a chat stream with data: {"error": …} and [DONE]."""
    failed = (
        "response.failed",
        {
            "type": "response.failed",
            "response": {"error": {"code": "rate_limit_exceeded", "message": "slow"}},
        },
    )
    out = run(ResponsesToChat("m"), [created(), failed])
    assert out[-2] == (
        "",
        {
            "error": {
                "message": "slow",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
    )
    assert out[-1] == (DONE, {})
    assembler = ChatAssembler()
    assembler.add(out)
    assert assembler.reply().status == 429


CHAT_REQUEST = {
    "model": "gpt-6.1-sol",
    "messages": [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "r"},
    ],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "F",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ],
    "temperature": 0.2,
    "max_tokens": 50,
    "stream": True,
    "stream_options": {"include_usage": True},
}


def test_t38_chat_request_to_codex() -> None:
    """T38: developer S, user u, paired call + output; no temperature or max_tokens."""
    request = chat_to_codex(CHAT_REQUEST, model="gpt-6.1-sol")
    body = request.body
    assert [(i["type"], i.get("role")) for i in body["input"]] == [
        ("message", "developer"),
        ("message", "user"),
        ("function_call", None),
        ("function_call_output", None),
    ]
    assert body["input"][2]["call_id"] == body["input"][3]["call_id"] == "call_1"
    assert body["input"][3]["output"] == "r"
    assert not set(body) & UNSUPPORTED
    assert body["tools"] == [
        {
            "type": "function",
            "name": "f",
            "description": "F",
            "parameters": {"type": "object", "properties": {}},
            "strict": False,
        }
    ]
    assert body["reasoning"] == {"effort": "medium", "summary": "auto"}
    assert request.client_stream is True


def test_t38_chat_request_to_claude() -> None:
    """T38 (opt-in): system S, max_tokens 50, paired tool_use/tool_result, no temperature."""
    request = chat_to_claude(CHAT_REQUEST, model="claude-opus-5-5")
    body = request.body
    assert body["system"] == [{"type": "text", "text": "S"}]
    assert body["max_tokens"] == 50
    assert "temperature" not in body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {}}
    ]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "r"}
    ]
    assert body["tools"] == [
        {"name": "f", "description": "F", "input_schema": {"type": "object", "properties": {}}}
    ]


def test_chat_stop_and_top_p_reach_claude_only() -> None:
    """stop -> stop_sequences and top_p are Claude parameters; Codex gets neither."""
    request = {**CHAT_REQUEST, "stop": "END", "top_p": 0.5}
    assert chat_to_claude(request, model="claude-opus-5-5").body["stop_sequences"] == ["END"]
    assert "stop" not in json.dumps(chat_to_codex(request, model="m").body["input"])


def test_unanswered_chat_tool_calls_and_orphan_outputs_are_dropped() -> None:
    """A call without its tool message, and a tool message without its call, vanish."""
    messages = [
        {"role": "user", "content": "u"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_8", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "orphan"},
        {"role": "user", "content": "again"},
    ]
    items = chat_to_codex({"model": "m", "messages": messages}, model="m").body["input"]
    assert [i["type"] for i in items] == ["message", "message"]


def test_claude_stream_as_chat_chunks() -> None:
    """Messages SSE -> chat chunks: text, tool call, finish reason, usage with cache reads."""
    text = claude_block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hi"}])
    call = claude_block(
        1,
        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}},
        [{"type": "input_json_delta", "partial_json": "{}"}],
    )
    events = [
        message_start(input_tokens=5, cache_read_input_tokens=20),
        *text,
        *call,
        *claude_end("tool_use", output_tokens=2),
    ]
    out = run(MessagesToChat("claude-opus-5-5", include_usage=True), events)
    deltas = [c["choices"][0]["delta"] for c in chunks(out) if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": "Hi"}
    assert deltas[1]["tool_calls"][0]["id"] == "toolu_1"
    assert chunks(out)[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks(out)[-1]["usage"]["prompt_tokens"] == 25
    assert out[-1] == (DONE, {})


def test_claude_stream_as_chat_ends_even_when_truncated() -> None:
    """A Claude stream cut short still ends the chat stream with an error and [DONE]."""
    text = claude_block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hi"}])
    out = run(MessagesToChat("m"), [message_start(), *text])
    assert "error" in out[-2][1]
    assert out[-1] == (DONE, {})
