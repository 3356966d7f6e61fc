"""Properties of the translators: any chunking gives the same client events, malformed
events never raise, every stream ends well-formed, equal requests are equal bytes."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.translate.captures import claude_code_oauth_body, codex_lite_body
from tests.translate.helpers import (
    Translator,
    call_item,
    claude,
    claude_block,
    claude_end,
    codex,
    completed,
    created,
    message_start,
    parse,
    run,
    sse_bytes,
    text_item,
)
from trio_pool.translate.chat_request import chat_to_codex
from trio_pool.translate.chat_stream import MessagesToChat, ResponsesToChat
from trio_pool.translate.codex_rules import UNSUPPORTED
from trio_pool.translate.errors import TranslationError
from trio_pool.translate.fields import dumps
from trio_pool.translate.messages_stream_to_responses import MessagesToResponses
from trio_pool.translate.messages_to_responses import messages_to_responses
from trio_pool.translate.responses_stream_to_messages import ResponsesToMessages
from trio_pool.translate.responses_to_messages import responses_to_messages
from trio_pool.translate.sse import DONE, Event, OutEvent, encode_all

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

USAGE = {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 3}, "output_tokens": 2}
REASONING = [
    codex(
        "response.output_item.added",
        output_index=0,
        item={"id": "rs_1", "type": "reasoning", "summary": []},
    ),
    codex("response.reasoning_summary_part.added", item_id="rs_1", output_index=0, summary_index=0),
    codex(
        "response.reasoning_summary_text.delta",
        item_id="rs_1",
        output_index=0,
        delta="plan ünïcode",
    ),
    codex(
        "response.output_item.done",
        output_index=0,
        item={"id": "rs_1", "type": "reasoning", "encrypted_content": "gAAAAE1"},
    ),
]
FIRST = call_item(
    "call_1", "Bash", '{"command":"echo hi"}', 1, deltas=['{"command":', '"echo hi"}']
)
SECOND = call_item("call_2", "Read", '{"path":"/x"}', 2, deltas=['{"path"', ':"/x"}'])
CODEX_STREAMS: list[list[Event]] = [
    [created(), *text_item("Hello\nworld"), completed(USAGE)],
    [created(), *REASONING, *FIRST, completed(USAGE)],
    [
        created(),
        *REASONING,
        FIRST[0],
        SECOND[0],
        FIRST[1],
        SECOND[1],
        FIRST[2],
        SECOND[2],
        FIRST[3],
        SECOND[3],
        completed(),
    ],
    [created(), *text_item("partial")[:2]],
    [
        created(),
        codex(
            "response.failed",
            response={"error": {"code": "server_is_overloaded", "message": "busy"}},
        ),
    ],
]
TOOL = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
CLAUDE_STREAMS: list[list[Event]] = [
    [
        message_start(input_tokens=4),
        *claude_block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "Hi ✓"}]),
        *claude_end(output_tokens=3),
    ],
    [
        message_start(),
        *claude_block(
            0,
            {"type": "thinking", "thinking": ""},
            [
                {"type": "thinking_delta", "thinking": "t"},
                {"type": "signature_delta", "signature": "EqQB"},
            ],
        ),
        claude("ping"),
        *claude_block(
            1,
            TOOL,
            [
                {"type": "input_json_delta", "partial_json": '{"command"'},
                {"type": "input_json_delta", "partial_json": ':"ls"}'},
            ],
        ),
        *claude_end("tool_use"),
    ],
    [
        message_start(),
        *claude_block(0, {"type": "text", "text": ""}, [{"type": "text_delta", "text": "cut"}])[:2],
    ],
    [message_start(), claude("error", error={"type": "overloaded_error", "message": "Overloaded"})],
]

Factory = Callable[[], Translator]
CODEX_TRANSLATORS: list[Factory] = [
    lambda: ResponsesToMessages("claude-opus-5-5"),
    lambda: ResponsesToChat("gpt-6.1-sol", include_usage=True),
]
CLAUDE_TRANSLATORS: list[Factory] = [
    lambda: MessagesToResponses("gpt-6.1-sol"),
    lambda: MessagesToChat("claude-opus-5-5", include_usage=True),
]


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@FAST
@given(
    scenario=st.integers(0, 100),
    translator=st.integers(0, 1),
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
    named=st.booleans(),
    crlf=st.booleans(),
)
def test_any_chunking_of_codex_bytes_gives_the_same_client_events(
    scenario: int, translator: int, cuts: list[int], named: bool, crlf: bool
) -> None:
    """Split anywhere, with or without event: lines or CRLF: the same events come out."""
    events = CODEX_STREAMS[scenario % len(CODEX_STREAMS)]
    data = sse_bytes(events, named=named)
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    make = CODEX_TRANSLATORS[translator]
    expected = run(make(), events)
    assert run(make(), parse(split(data, cuts))) == expected


@FAST
@given(
    scenario=st.integers(0, 100),
    translator=st.integers(0, 1),
    cuts=st.lists(st.integers(0, 10_000), max_size=40),
)
def test_any_chunking_of_claude_bytes_gives_the_same_client_events(
    scenario: int, translator: int, cuts: list[int]
) -> None:
    """The same for Anthropic streams."""
    events = CLAUDE_STREAMS[scenario % len(CLAUDE_STREAMS)]
    make = CLAUDE_TRANSLATORS[translator]
    expected = run(make(), events)
    assert run(make(), parse(split(sse_bytes(events), cuts))) == expected


# -- malformed input ----------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=False)
    | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
ODD = st.one_of(JSON, st.sampled_from(["", "{", '{"a":', "}"]))
CODEX_KINDS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.output_text.delta",
    "response.refusal.delta",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta",
    "response.reasoning_text.delta",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
    "codex.rate_limits",
    "response.unknown_kind",
]
ITEM = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["message", "reasoning", "function_call", "custom_tool_call", "web_search_call", "x"]
        )
    },
    optional={
        "id": st.sampled_from(["a", "b", "rs_1"]) | JSON,
        "call_id": st.sampled_from(["c1", "c2"]) | JSON,
        "name": st.sampled_from(["Bash", ""]) | JSON,
        "arguments": st.sampled_from(['{"a":1}', "not json", ""]) | JSON,
        "input": ODD,
        "content": JSON,
        "summary": JSON,
        "encrypted_content": st.sampled_from(["gAAAAX", ""]) | JSON,
    },
)
CODEX_EVENT = st.builds(
    lambda kind, fields: (kind, {"type": kind, **fields}),
    st.sampled_from(CODEX_KINDS),
    st.fixed_dictionaries(
        {},
        optional={
            "output_index": st.integers(0, 2) | JSON,
            "item_id": st.sampled_from(["a", "b"]) | JSON,
            "item": ITEM | JSON,
            "delta": st.text(max_size=4) | JSON,
            "arguments": st.text(max_size=4) | JSON,
            "part": JSON,
            "response": st.fixed_dictionaries(
                {},
                optional={
                    "id": JSON,
                    "usage": JSON,
                    "output": st.lists(ITEM, max_size=2) | JSON,
                    "error": JSON,
                    "incomplete_details": JSON,
                },
            )
            | JSON,
            "error": JSON,
        },
    ),
)
CLAUDE_KINDS = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "other",
]
BLOCK = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["text", "thinking", "redacted_thinking", "tool_use", "server_tool_use", "x"]
        )
    },
    optional={
        "id": JSON,
        "name": st.sampled_from(["Bash", "functions__exec"]) | JSON,
        "input": JSON,
        "data": JSON,
    },
)
DELTA = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["text_delta", "thinking_delta", "signature_delta", "input_json_delta", "x"]
        )
    },
    optional={
        "text": JSON,
        "thinking": JSON,
        "signature": JSON,
        "partial_json": st.text(max_size=4) | JSON,
    },
)
CLAUDE_EVENT = st.builds(
    lambda kind, fields: (kind, {"type": kind, **fields}),
    st.sampled_from(CLAUDE_KINDS),
    st.fixed_dictionaries(
        {},
        optional={
            "index": st.integers(0, 2) | JSON,
            "content_block": BLOCK | JSON,
            "delta": DELTA | JSON,
            "message": JSON,
            "usage": JSON,
            "error": JSON,
        },
    ),
)
GARBAGE = st.tuples(st.text(max_size=8), ODD)


def perturbed(
    streams: list[list[Event]], noise: st.SearchStrategy[Event]
) -> st.SearchStrategy[list[Event]]:
    """A real stream with events dropped and random ones inserted: malformed, but deep."""

    def apply(base: list[Event], drops: set[int], inserts: list[tuple[int, Event]]) -> list[Event]:
        events = [e for i, e in enumerate(base) if i not in drops]
        for position, event in inserts:
            events.insert(position % (len(events) + 1), event)
        return events

    return st.builds(
        apply,
        st.sampled_from(streams),
        st.sets(st.integers(0, 20), max_size=3),
        st.lists(st.tuples(st.integers(0, 40), noise), max_size=5),
    )


def check_messages(out: list[OutEvent]) -> None:
    """One message_start at most, blocks never interleave, one terminal event, last."""
    open_index: int | None = None
    last_index = -1
    started = ended = False
    for name, data in out:
        assert not ended, f"{name} after the terminal event"
        if name == "message_start":
            assert not started
            started = True
        elif name == "content_block_start":
            assert started
            assert open_index is None
            assert data["index"] == last_index + 1
            open_index = last_index = data["index"]
        elif name in ("content_block_delta", "content_block_stop"):
            assert data["index"] == open_index
            if name == "content_block_stop":
                open_index = None
        elif name == "message_delta":
            assert open_index is None
        elif name in ("message_stop", "error"):
            assert open_index is None
            ended = True
    assert ended


def check_responses(out: list[OutEvent]) -> None:
    """Sequence numbers count up; one terminal event, last, with a response id."""
    assert [data["sequence_number"] for _, data in out] == list(range(len(out)))
    terminals = [
        n for n, _ in out if n in ("response.completed", "response.incomplete", "response.failed")
    ]
    assert terminals == [out[-1][0]]
    assert out[-1][1]["response"]["id"].startswith("resp_")


def check_chat(out: list[OutEvent]) -> None:
    """Exactly one [DONE], last, after a finish chunk or an error chunk."""
    assert [n for n, _ in out].count(DONE) == 1
    assert out[-1][0] == DONE
    assert "error" in out[-2][1] or any(
        c["finish_reason"] for _, d in out[:-1] for c in d.get("choices", [])
    )


def feed_all(translator: Translator, events: list[Event]) -> list[OutEvent]:
    out = run(translator, events)
    assert translator.feed(events[0] if events else ("x", {})) == []  # nothing after the end
    encode_all(out)  # always serialisable
    return out


@FAST
@given(
    st.one_of(
        st.lists(st.one_of(CODEX_EVENT, GARBAGE), max_size=25),
        perturbed(CODEX_STREAMS, st.one_of(CODEX_EVENT, GARBAGE)),
    )
)
def test_malformed_codex_events_never_raise_and_streams_end_well_formed(
    events: list[Event],
) -> None:
    """Unknown types, missing fields, non-dict data: no exception, a well-formed ending."""
    check_messages(feed_all(ResponsesToMessages("claude-opus-5-5"), events))
    check_chat(feed_all(ResponsesToChat("m", include_usage=True), events))


@FAST
@given(
    st.one_of(
        st.lists(st.one_of(CLAUDE_EVENT, GARBAGE), max_size=25),
        perturbed(CLAUDE_STREAMS, st.one_of(CLAUDE_EVENT, GARBAGE)),
    )
)
def test_malformed_claude_events_never_raise_and_streams_end_well_formed(
    events: list[Event],
) -> None:
    """The same for the Claude-side translators."""
    check_responses(feed_all(MessagesToResponses("gpt-6.1-sol"), events))
    check_chat(feed_all(MessagesToChat("m"), events))


def test_the_example_streams_end_well_formed() -> None:
    """Every scenario above also passes the well-formedness checks."""
    for events in CODEX_STREAMS:
        check_messages(run(ResponsesToMessages("m"), events))
        check_chat(run(ResponsesToChat("m"), events))
    for events in CLAUDE_STREAMS:
        check_responses(run(MessagesToResponses("m"), events))
        check_chat(run(MessagesToChat("m"), events))


# -- requests ---------------------------------------------------------------------------


def test_translating_the_same_request_twice_gives_identical_bytes() -> None:
    """Determinism: equal requests give equal bytes, in every direction."""
    headers = {"x-claude-code-session-id": "S"}
    claude_body = claude_code_oauth_body()
    first = messages_to_responses(claude_body, model="gpt-6.1-sol", headers=headers)
    second = messages_to_responses(copy.deepcopy(claude_body), model="gpt-6.1-sol", headers=headers)
    assert dumps(first.body) == dumps(second.body)
    assert first.headers == second.headers
    codex_body = codex_lite_body()
    assert dumps(responses_to_messages(codex_body, model="claude-opus-5-5").body) == dumps(
        responses_to_messages(copy.deepcopy(codex_body), model="claude-opus-5-5").body
    )
    assert claude_body == claude_code_oauth_body()  # the input is never modified


def test_claude_code_capture_translates_cleanly() -> None:
    """The CAP body: system in a developer message, environment in place, no leftovers."""
    request = messages_to_responses(claude_code_oauth_body(), model="gpt-6.1-sol")
    body = request.body
    assert body["input"][0]["role"] == "developer"
    assert next(p["text"] for p in body["input"][0]["content"]).startswith("You are a Claude agent")
    assert body["input"][-1] == {
        "type": "message",
        "role": "developer",
        "content": [
            {
                "type": "input_text",
                "text": "# Environment\nWorking directory: /tmp/w\nPlatform: linux",
            }
        ],
    }
    text = json.dumps(body)
    for leftover in (
        "cache_control",
        "defer_loading",
        "$schema",
        "billing-header",
        "context_management",
    ):
        assert leftover not in text
    assert body["prompt_cache_key"]
    assert request.client_stream is True


REQUEST_EXTRAS = st.dictionaries(st.sampled_from(sorted(UNSUPPORTED)), JSON, max_size=6)


@FAST
@given(extras=REQUEST_EXTRAS, messages=st.lists(JSON, max_size=4))
def test_no_translated_codex_body_carries_a_strip_list_key(
    extras: dict[str, Any], messages: list[Any]
) -> None:
    """T40 property: whatever the client sends, no Codex-unsupported key goes upstream."""
    request = {"model": "x", "messages": messages, **extras}
    for body in (
        messages_to_responses(request, model="m").body,
        chat_to_codex(request, model="m").body,
    ):
        assert not set(body) & UNSUPPORTED
        assert body["store"] is False
        assert body["stream"] is True
        assert body["instructions"] == ""


@FAST
@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries({"messages": JSON, "input": JSON, "tools": JSON, "system": JSON}),
    )
)
def test_malformed_requests_are_translated_or_refused_never_crash(body: Any) -> None:
    """Any JSON gives a body or a TranslationError (a 400), in every direction."""
    for translate in (
        lambda: messages_to_responses(body, model="m"),
        lambda: chat_to_codex(body, model="m"),
        lambda: responses_to_messages(body, model="claude-opus-5-5"),
    ):
        try:
            translate()
        except TranslationError:
            pass
