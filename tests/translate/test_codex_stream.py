"""Codex SSE -> Messages SSE, and the non-streaming answer: §8 vectors T23-T31 (§3)."""

from __future__ import annotations

import json
from typing import Any

from tests.translate.helpers import (
    CLIENT_MODEL,
    call_item,
    codex,
    completed,
    created,
    names,
    run,
    text_item,
)
from trio_pool.translate.aggregate import MessageAssembler
from trio_pool.translate.ids import ToolNames
from trio_pool.translate.responses_stream_to_messages import ResponsesToMessages
from trio_pool.translate.sse import Event, OutEvent, encode_all

USAGE = {"input_tokens": 100, "input_tokens_details": {"cached_tokens": 80}, "output_tokens": 5}


def translate(events: list[Event], **options: Any) -> list[OutEvent]:
    return run(ResponsesToMessages(CLIENT_MODEL, **options), events)


def deltas(events: list[OutEvent]) -> list[dict[str, Any]]:
    return [data["delta"] for name, data in events if name == "content_block_delta"]


def reasoning(item_id: str, encrypted: str, *summary_events: Event) -> list[Event]:
    item = {"id": item_id, "type": "reasoning", "summary": []}
    done = {**item, "encrypted_content": encrypted}
    return [
        codex("response.output_item.added", output_index=0, item=item),
        *summary_events,
        codex("response.output_item.done", output_index=0, item=done),
    ]


def test_t23_text_reply_with_cached_usage() -> None:
    """T23: message_start with the client's model, one text block, Anthropic usage."""
    messages = [created(), *text_item("Hel"), completed(USAGE)]
    messages[2] = codex(
        "response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta="Hel"
    )
    messages.insert(
        3,
        codex(
            "response.output_text.delta",
            item_id="msg_1",
            output_index=0,
            content_index=0,
            delta="lo",
        ),
    )
    out = translate(messages)
    assert names(out) == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert out[0][1]["message"]["model"] == "claude-opus-5-5"
    assert out[1][1]["content_block"] == {"type": "text", "text": ""}
    assert [d["text"] for d in deltas(out)] == ["Hel", "lo"]
    assert out[5][1]["delta"]["stop_reason"] == "end_turn"
    assert out[5][1]["usage"] == {
        "input_tokens": 20,
        "cache_read_input_tokens": 80,
        "output_tokens": 5,
    }


def test_t24_summary_parts_make_one_thinking_block_with_our_signature() -> None:
    """T24: two summary parts -> A, blank line, B, then the tp1 signature."""
    summary = [
        codex(
            "response.reasoning_summary_part.added", item_id="rs_1", output_index=0, summary_index=0
        ),
        codex("response.reasoning_summary_text.delta", item_id="rs_1", output_index=0, delta="A"),
        codex(
            "response.reasoning_summary_part.added", item_id="rs_1", output_index=0, summary_index=1
        ),
        codex("response.reasoning_summary_text.delta", item_id="rs_1", output_index=0, delta="B"),
    ]
    out = translate([created(), *reasoning("rs_1", "gAAAAX", *summary), completed()])
    starts = [d for n, d in out if n == "content_block_start"]
    assert len(starts) == 1
    assert starts[0]["content_block"] == {"type": "thinking", "thinking": ""}
    assert deltas(out) == [
        {"type": "thinking_delta", "thinking": "A"},
        {"type": "thinking_delta", "thinking": "\n\n"},
        {"type": "thinking_delta", "thinking": "B"},
        {"type": "signature_delta", "signature": "tp1:codex:cnNfMQ:gAAAAX"},
    ]
    assert names(out).count("content_block_stop") == 1


def test_t25_reasoning_without_summary_still_carries_its_signature() -> None:
    """T25: no summary events -> empty thinking block, signature, stop."""
    out = translate([created(), *reasoning("rs_1", "gAAAAX"), completed()])
    assert names(out)[1:4] == ["content_block_start", "content_block_delta", "content_block_stop"]
    assert deltas(out) == [{"type": "signature_delta", "signature": "tp1:codex:cnNfMQ:gAAAAX"}]


def test_t25_without_replay_no_signature_and_no_empty_block() -> None:
    """With reasoning_replay off a summary-less reasoning item shows nothing."""
    out = translate(
        [created(), *reasoning("rs_1", "gAAAAX"), *text_item("x", 1), completed()],
        reasoning_replay=False,
    )
    assert [d["content_block"]["type"] for n, d in out if n == "content_block_start"] == ["text"]


def test_t26_function_call_becomes_a_tool_use_block() -> None:
    """T26: tool_use start with empty input, "" delta, the partials, stop_reason tool_use."""
    out = translate(
        [
            created(),
            *call_item("call_1", "Bash", '{"command":"ls"}', deltas=['{"command":', '"ls"}']),
            completed(),
        ]
    )
    start = next(d for n, d in out if n == "content_block_start")
    assert start["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "Bash",
        "input": {},
    }
    assert [d["partial_json"] for d in deltas(out)] == ["", '{"command":', '"ls"}']
    assert next(d for n, d in out if n == "message_delta")["delta"]["stop_reason"] == "tool_use"


def test_t26_shortened_tool_names_are_mapped_back() -> None:
    """A call to a shortened name comes back under the client's original name (T16)."""
    original = "mcp__" + "b" * 70 + "__read"
    names_map = ToolNames.build(["mcp__" + "a" * 70 + "__read", original])
    out = translate(
        [created(), *call_item("call_1", "mcp__read_1", "{}"), completed()], tool_names=names_map
    )
    assert (
        next(d for n, d in out if n == "content_block_start")["content_block"]["name"] == original
    )


def test_t27_interleaved_calls_are_written_one_block_at_a_time() -> None:
    """T27: two calls with interleaved deltas -> block 0 complete, then block 1."""
    first = call_item("call_1", "A", '{"a":1}', index=0, deltas=['{"a":', "1}"])
    second = call_item("call_2", "B", '{"b":2}', index=1, deltas=['{"b":', "2}"])
    interleaved = [
        first[0],
        second[0],
        first[1],
        second[1],
        first[2],
        second[2],
        first[3],
        second[3],
    ]
    out = translate([created(), *interleaved, completed()])
    blocks = [(n, d.get("index")) for n, d in out if n.startswith("content_block")]
    assert blocks == [
        ("content_block_start", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_delta", 0),
        ("content_block_stop", 0),
        ("content_block_start", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_delta", 1),
        ("content_block_stop", 1),
    ]
    partials = [d["partial_json"] for d in deltas(out)]
    assert "".join(partials[:3]) == '{"a":1}'
    assert "".join(partials[3:]) == '{"b":2}'


def test_t28_incomplete_reasons_map_to_stop_reasons() -> None:
    """T28: max_output_tokens -> max_tokens; content_filter -> refusal."""
    for reason, stop in (("max_output_tokens", "max_tokens"), ("content_filter", "refusal")):
        response = {
            "id": "resp_1",
            "status": "incomplete",
            "incomplete_details": {"reason": reason},
        }
        out = translate(
            [created(), *text_item("x"), codex("response.incomplete", response=response)]
        )
        assert next(d for n, d in out if n == "message_delta")["delta"]["stop_reason"] == stop
        assert names(out)[-1] == "message_stop"


def test_t29_failure_after_text_closes_the_block_and_sends_an_error() -> None:
    """T29: response.failed rate_limit_exceeded -> block stop, rate_limit_error, no stop."""
    error = {"code": "rate_limit_exceeded", "message": "try again in 1.5s"}
    events = [
        created(),
        *text_item("x")[:2],
        codex("response.failed", response={"id": "resp_1", "status": "failed", "error": error}),
    ]
    out = translate(events)
    assert names(out)[-2:] == ["content_block_stop", "error"]
    assert out[-1][1] == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "try again in 1.5s"},
    }
    assert "message_stop" not in names(out)


def test_t30_eof_after_a_delta_ends_with_an_api_error() -> None:
    """T30: the stream ends early -> content_block_stop then event: error api_error."""
    out = translate([created(), *text_item("x")[:2]])
    assert names(out)[-2:] == ["content_block_stop", "error"]
    assert out[-1][1]["error"]["type"] == "api_error"


def test_t30_failure_before_content_writes_only_handshake_events() -> None:
    """T30: before any content only handshake events exist, so the shell can fail over."""
    from trio_pool.translate.errors import is_handshake_event, is_retryable_failure

    failed = codex("response.failed", response={"error": {"code": "rate_limit_exceeded"}})
    upstream = [created(), codex("response.in_progress", response={"id": "resp_1"}), failed]
    assert [is_handshake_event(e) for e in upstream] == [True, True, False]
    assert is_retryable_failure(failed)
    assert not is_handshake_event(text_item("x")[0])


def test_t31_non_streaming_answer_is_assembled_from_the_stream() -> None:
    """T31: thinking, text and tool_use in one message JSON; stop_reason tool_use."""
    summary = [
        codex("response.reasoning_summary_text.delta", item_id="rs_1", output_index=0, delta="A")
    ]
    events = [
        created(),
        *reasoning("rs_1", "gAAAAX", *summary),
        *text_item("Hello", 1),
        *call_item("call_1", "Bash", '{"command":"ls"}', 2),
        completed(USAGE),
    ]
    assembler = MessageAssembler()
    assembler.add(translate(events))
    reply = assembler.reply()
    assert reply.status == 200
    body = reply.body
    assert body["type"] == "message"
    assert body["model"] == CLIENT_MODEL
    assert body["content"] == [
        {"type": "thinking", "thinking": "A", "signature": "tp1:codex:cnNfMQ:gAAAAX"},
        {"type": "text", "text": "Hello"},
        {"type": "tool_use", "id": "call_1", "name": "Bash", "input": {"command": "ls"}},
    ]
    assert body["stop_reason"] == "tool_use"
    assert body["usage"]["cache_read_input_tokens"] == 80


def test_t31_arguments_that_are_not_json_become_an_empty_input() -> None:
    """T31: arguments "not json" -> input {}."""
    assembler = MessageAssembler()
    assembler.add(translate([created(), *call_item("call_1", "Bash", "not json"), completed()]))
    assert assembler.reply().body["content"][0]["input"] == {}


def test_t31_a_failed_stream_gives_an_error_answer_with_retry_after() -> None:
    """A non-streaming client gets an Anthropic error JSON, 429 with retry-after."""
    error = {"code": "rate_limit_exceeded", "message": "try again in 1.5s"}
    assembler = MessageAssembler()
    assembler.add(translate([created(), codex("response.failed", response={"error": error})]))
    reply = assembler.reply()
    assert reply.status == 429
    assert ("retry-after", "2") in reply.headers
    assert reply.body["error"]["type"] == "rate_limit_error"


def test_items_only_in_completed_output_are_still_shown() -> None:
    """Output present only in response.completed is emitted (CPA fills from it)."""
    output = [
        {
            "id": "msg_9",
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "late"}],
        }
    ]
    out = translate([created(), completed(output=output)])
    assert [d["text"] for d in deltas(out)] == ["late"]


def test_message_id_and_bytes_are_deterministic() -> None:
    """The same upstream events give the same bytes, message id included."""
    events = [created(), *text_item("Hello"), completed(USAGE)]
    first, second = encode_all(translate(events)), encode_all(translate(events))
    assert first == second
    start = json.loads(first.split(b"\n")[1][len(b"data: ") :])
    assert start["message"]["id"].startswith("msg_")
