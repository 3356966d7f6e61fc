"""Messages -> Codex Responses requests: translation.md §8 vectors T1-T22 (§2)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from trio_pool.translate.codex_rules import UNSUPPORTED
from trio_pool.translate.errors import TranslationError
from trio_pool.translate.messages_to_responses import messages_to_responses

MODEL = "gpt-6.1-sol"


def translate(**body: Any) -> dict[str, Any]:
    body.setdefault("model", "claude-opus-5-5")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return messages_to_responses(body, model=MODEL).body


def user(*blocks: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}


def tool_use(call_id: str, name: str = "Bash", **arguments: Any) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments}


def tool_result(call_id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def developer(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": text}],
    }


def user_item(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def test_t1_system_blocks_become_a_developer_message_without_billing_or_cache_control() -> None:
    """T1: billing header dropped, cache_control gone, fixed Codex fields set, no max_tokens."""
    body = translate(
        system=[
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.330.440;"},
            {
                "type": "text",
                "text": "You are X",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        ],
        max_tokens=128000,
    )
    assert body["instructions"] == ""
    assert body["input"] == [developer("You are X"), user_item("hi")]
    assert body["store"] is False
    assert body["stream"] is True
    text = json.dumps(body)
    assert "cache_control" not in text
    assert "max_tokens" not in body
    assert "max_output_tokens" not in body


def test_t2_mid_conversation_system_message_stays_in_place() -> None:
    """T2: a role:system message becomes a developer message at its position."""
    messages = [
        user({"type": "text", "text": "a"}),
        {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
    ]
    body = translate(messages=messages)
    assert body["input"][1] == developer("# Environment")


def test_t2_mid_conversation_system_message_as_a_system_reminder_when_configured() -> None:
    """T2 (configured): the same message as a <system-reminder> user text."""
    messages = [user({"type": "text", "text": "a"}), {"role": "system", "content": "# Environment"}]
    body = messages_to_responses(
        {"model": "m", "messages": messages}, model=MODEL, system_messages="reminder"
    ).body
    assert body["input"][1] == user_item("<system-reminder>\n# Environment\n</system-reminder>")


def test_t3_sampling_and_bookkeeping_parameters_are_never_sent() -> None:
    """T3: temperature, top_p, top_k, stop_sequences, metadata, context_management dropped."""
    body = translate(
        temperature=0.5,
        top_p=0.9,
        top_k=5,
        stop_sequences=["x"],
        metadata={"user_id": "u"},
        context_management={"edits": []},
        max_tokens=5,
    )
    assert not set(body) & (UNSUPPORTED | {"user", "truncation", "seed", "top_k"})


def test_t4_adaptive_thinking_with_display_omitted_sends_effort_without_summary() -> None:
    """T4: adaptive + omitted -> reasoning {effort: medium}, include encrypted content."""
    body = translate(
        thinking={"type": "adaptive", "display": "omitted"}, output_config={"effort": "medium"}
    )
    assert body["reasoning"] == {"effort": "medium"}
    assert body["include"] == ["reasoning.encrypted_content"]


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 8192}, "medium"),
        ({"type": "enabled", "budget_tokens": 10000}, "high"),
        ({"type": "enabled", "budget_tokens": 40000}, "xhigh"),
        ({"type": "disabled"}, "none"),
    ],
    ids=["T5-1024", "T5-8192", "T5-10000", "T5-40000", "T5-disabled"],
)
def test_t5_budget_maps_to_effort(thinking: dict[str, Any], effort: str) -> None:
    """T5: budget_tokens thresholds give CPA's effort levels."""
    assert translate(thinking=thinking)["reasoning"]["effort"] == effort


def test_t5_adaptive_max_becomes_xhigh() -> None:
    """T5: Anthropic's max effort is Codex's xhigh."""
    body = translate(thinking={"type": "adaptive"}, output_config={"effort": "max"})
    assert body["reasoning"]["effort"] == "xhigh"


def test_t6_summarized_display_asks_for_summaries() -> None:
    """T6: display summarized -> reasoning.summary auto."""
    body = translate(thinking={"type": "adaptive", "display": "summarized"})
    assert body["reasoning"]["summary"] == "auto"


def test_t7_prompt_cache_key_from_session_header_user_id_json_and_legacy_form() -> None:
    """T7: one uuid5 key from the session, the same in body and session-id header."""
    expected = str(
        uuid.uuid5(uuid.NAMESPACE_OID, f"trio-pool:codex:claude-code\0{MODEL}\0claude:S:agent:main")
    )
    base = {"model": "claude-opus-5-5", "messages": [{"role": "user", "content": "hi"}]}
    by_header = messages_to_responses(base, model=MODEL, headers={"x-claude-code-session-id": "S"})
    assert by_header.body["prompt_cache_key"] == expected
    assert ("session-id", expected) in by_header.headers
    user_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "S"})
    by_json = messages_to_responses({**base, "metadata": {"user_id": user_id}}, model=MODEL)
    assert by_json.body["prompt_cache_key"] == expected
    legacy = {**base, "metadata": {"user_id": "user_" + "a" * 64 + "_account__session_S"}}
    assert messages_to_responses(legacy, model=MODEL).body["prompt_cache_key"] == expected


def test_t8_base64_image_becomes_a_data_url() -> None:
    """T8: image base64 png -> input_image data URL."""
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    body = translate(messages=[user(image)])
    assert body["input"][0]["content"] == [
        {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}
    ]


def test_t9_pdf_document_becomes_an_input_file() -> None:
    """T9: PDF document -> input_file with file_data and document.pdf."""
    doc = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
    }
    body = translate(messages=[user(doc)])
    assert body["input"][0]["content"] == [
        {
            "type": "input_file",
            "file_data": "data:application/pdf;base64,JVBE",
            "filename": "document.pdf",
        }
    ]


def test_t10_tool_use_and_result_become_a_paired_call_and_output_without_ids() -> None:
    """T10: text + tool_use -> output_text message + function_call; result -> output."""
    messages = [
        user({"type": "text", "text": "go"}),
        assistant({"type": "text", "text": "run"}, tool_use("toolu_1", command="ls")),
        user(tool_result("toolu_1", "a\nb")),
    ]
    items = translate(messages=messages)["input"]
    assert items[1:] == [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "run"}],
        },
        {
            "type": "function_call",
            "call_id": "toolu_1",
            "name": "Bash",
            "arguments": '{"command":"ls"}',
        },
        {"type": "function_call_output", "call_id": "toolu_1", "output": "a\nb"},
    ]
    assert all("id" not in item for item in items)


def test_t11_error_result_with_an_image_keeps_parts_and_marks_the_error() -> None:
    """T11: is_error + [text, image] -> prefixed input_text then input_image."""
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
    }
    result = tool_result("toolu_1", [{"type": "text", "text": "boom"}, image], is_error=True)
    messages = [user({"type": "text", "text": "go"}), assistant(tool_use("toolu_1")), user(result)]
    output = translate(messages=messages)["input"][-1]["output"]
    assert output == [
        {"type": "input_text", "text": "[tool execution error]\nboom"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
    ]


def test_t12_tool_reference_becomes_a_loaded_tool_line() -> None:
    """T12: tool_reference -> [Loaded tool: WebFetch]."""
    result = tool_result("toolu_1", [{"type": "tool_reference", "tool_name": "WebFetch"}])
    messages = [user({"type": "text", "text": "go"}), assistant(tool_use("toolu_1")), user(result)]
    assert translate(messages=messages)["input"][-1]["output"] == "[Loaded tool: WebFetch]"


EDIT_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "file_path": {"type": "string", "description": "The absolute path"},
        "old_string": {"type": "string"},
        "new_string": {"type": "string"},
        "replace_all": {"type": "boolean", "default": False},
    },
    "required": ["file_path", "old_string", "new_string"],
    "additionalProperties": False,
}


def test_t13_claude_code_tool_becomes_a_non_strict_function() -> None:
    """T13: Edit tool -> function with cleaned parameters, strict false, no extras."""
    tool = {
        "name": "Edit",
        "description": "Edit a file",
        "input_schema": EDIT_SCHEMA,
        "cache_control": {"type": "ephemeral"},
        "defer_loading": True,
    }
    (function,) = translate(tools=[tool])["tools"]
    assert function == {
        "type": "function",
        "name": "Edit",
        "description": "Edit a file",
        "parameters": {k: v for k, v in EDIT_SCHEMA.items() if k != "$schema"},
        "strict": False,
    }


def test_t14_unsupported_patterns_are_dropped_and_plain_ones_kept() -> None:
    """T14: \\p{..} / look-around patterns dropped; ^[a-z]+$ kept."""
    schema = {
        "type": "object",
        "properties": {
            "name": {
                "type": "string",
                "pattern": "^(?!__.*__$)[^\\p{Cc}]{1,200}$",
                "maxLength": 200,
            },
            "slug": {"type": "string", "pattern": "^[a-z]+$"},
            "pattern": {"type": "string"},
        },
    }
    (function,) = translate(tools=[{"name": "T", "input_schema": schema}])["tools"]
    properties = function["parameters"]["properties"]
    assert properties["name"] == {"type": "string", "maxLength": 200}
    assert properties["slug"]["pattern"] == "^[a-z]+$"
    assert properties["pattern"] == {"type": "string"}  # a property named pattern stays


@pytest.mark.parametrize("schema", [{"type": "object"}, None], ids=["T15-object", "T15-null"])
def test_t15_bare_or_missing_schema_becomes_an_empty_object(schema: Any) -> None:
    """T15: {type: object} or null -> {type: object, properties: {}}."""
    (function,) = translate(tools=[{"name": "T", "input_schema": schema}])["tools"]
    assert function["parameters"] == {"type": "object", "properties": {}}


def test_t16_long_mcp_names_are_shortened_uniquely() -> None:
    """T16: two >64-char mcp names -> mcp__read, mcp__read_1; short names untouched."""
    a, b = "mcp__" + "a" * 70 + "__read", "mcp__" + "b" * 70 + "__read"
    request = messages_to_responses(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": a}, {"name": b}, {"name": "Bash"}],
        },
        model=MODEL,
    )
    assert [t["name"] for t in request.body["tools"]] == ["mcp__read", "mcp__read_1", "Bash"]
    assert request.tool_names.original("mcp__read_1") == b


@pytest.mark.parametrize(
    ("choice", "expected", "parallel"),
    [
        ({"type": "any"}, "required", True),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "name": "Bash"}, True),
        ({"type": "auto", "disable_parallel_tool_use": True}, "auto", False),
    ],
    ids=["T17-any", "T17-tool", "T17-auto-serial"],
)
def test_t17_tool_choice_maps_to_responses(
    choice: dict[str, Any], expected: Any, parallel: bool
) -> None:
    """T17: any -> required; tool -> function; disable_parallel_tool_use -> serial."""
    body = translate(
        tools=[{"name": "Bash", "input_schema": {"type": "object"}}], tool_choice=choice
    )
    assert body["tool_choice"] == expected
    assert body["parallel_tool_calls"] is parallel


def test_t18_web_search_server_tool_becomes_codex_web_search() -> None:
    """T18: web_search_20250305 with allowed_domains -> web_search filters."""
    tool = {"type": "web_search_20250305", "name": "web_search", "allowed_domains": ["a.com"]}
    assert translate(tools=[tool])["tools"] == [
        {"type": "web_search", "filters": {"allowed_domains": ["a.com"]}}
    ]


def test_t18_forcing_a_hosted_tool_falls_back_to_auto() -> None:
    """A tool_choice naming a non-function tool is never forced (RCP: upstream 502s)."""
    tool = {"type": "web_search_20250305", "name": "web_search"}
    body = translate(tools=[tool], tool_choice={"type": "tool", "name": "web_search"})
    assert body["tool_choice"] == "auto"


def test_t19_our_signature_replays_the_reasoning_item_before_its_call() -> None:
    """T19: tp1 signature -> reasoning item right before the function_call."""
    thinking = {"type": "thinking", "thinking": "", "signature": "tp1:codex:cnNfMQ:gAAAAB"}
    messages = [
        user({"type": "text", "text": "go"}),
        assistant(thinking, tool_use("toolu_1")),
        user(tool_result("toolu_1")),
    ]
    items = translate(messages=messages)["input"]
    assert items[1] == {
        "type": "reasoning",
        "id": "rs_1",
        "summary": [],
        "encrypted_content": "gAAAAB",
    }
    assert items[2]["type"] == "function_call"


@pytest.mark.parametrize("signature", ["EqQBCkYIBxgCKkA", ""], ids=["T19-anthropic", "T19-empty"])
def test_t19_foreign_or_empty_signatures_give_no_reasoning_item(signature: str) -> None:
    """T19: Anthropic's or an empty signature -> no reasoning item."""
    thinking = {"type": "thinking", "thinking": "t", "signature": signature}
    messages = [
        user({"type": "text", "text": "go"}),
        assistant(thinking, tool_use("toolu_1")),
        user(tool_result("toolu_1")),
    ]
    assert [i["type"] for i in translate(messages=messages)["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]


def test_t20_orphan_results_and_unanswered_calls_are_dropped() -> None:
    """T20: a result without its call and a call without result (not last turn) vanish."""
    messages = [
        user(tool_result("toolu_9", "lost"), {"type": "text", "text": "go"}),
        assistant({"type": "text", "text": "a"}, tool_use("toolu_8")),
        user({"type": "text", "text": "next"}),
    ]
    items = translate(messages=messages)["input"]
    assert not [i for i in items if i["type"] in ("function_call", "function_call_output")]


def test_t20_a_reasoning_item_whose_calls_were_dropped_goes_too() -> None:
    """A reasoning item needs a following item of its turn, or the backend refuses it."""
    thinking = {"type": "thinking", "thinking": "", "signature": "tp1:codex:cnNfMQ:gAAAAB"}
    messages = [
        user({"type": "text", "text": "go"}),
        assistant(thinking, tool_use("toolu_8")),
        user({"type": "text", "text": "x"}),
    ]
    assert [i["type"] for i in translate(messages=messages)["input"]] == ["message", "message"]


def test_t21_duplicate_tool_use_ids_give_one_call() -> None:
    """T21: a repeated tool_use id keeps its first use only."""
    messages = [
        user({"type": "text", "text": "go"}),
        assistant(tool_use("toolu_1"), tool_use("toolu_1")),
        user(tool_result("toolu_1"), tool_result("toolu_1")),
    ]
    items = translate(messages=messages)["input"]
    assert [i["type"] for i in items].count("function_call") == 1
    assert [i["type"] for i in items].count("function_call_output") == 1


def test_t22_fast_speed_asks_for_the_priority_tier() -> None:
    """T22: speed fast -> service_tier priority; absent -> none."""
    assert translate(speed="fast")["service_tier"] == "priority"
    assert "service_tier" not in translate()


def test_long_call_ids_are_shortened_the_same_way_on_both_sides() -> None:
    """Call ids over 64 characters are cut with a hash, identically for call and output."""
    long_id = "toolu_" + "x" * 80
    messages = [
        user({"type": "text", "text": "go"}),
        assistant(tool_use(long_id)),
        user(tool_result(long_id)),
    ]
    items = translate(messages=messages)["input"]
    assert items[1]["call_id"] == items[2]["call_id"]
    assert len(items[1]["call_id"]) == 64


def test_a_request_that_is_not_a_messages_body_is_refused() -> None:
    """A body without a messages list is a clear 400, never a crash."""
    with pytest.raises(TranslationError) as caught:
        messages_to_responses({"model": "m"}, model=MODEL)
    assert caught.value.status_hint == 400


def test_supported_efforts_clamp_the_effort() -> None:
    """Efforts the model lacks degrade to the nearest supported one."""
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x"}],
        "output_config": {"effort": "max"},
    }
    request = messages_to_responses(body, model=MODEL, supported_efforts=["low", "medium", "high"])
    assert request.body["reasoning"]["effort"] == "high"


def test_compaction_requests_reason_at_low_effort() -> None:
    """Claude Code's summarisation prompt is capped to low effort (RCP)."""
    system = "You are a helpful AI assistant tasked with summarizing conversations."
    body = translate(system=system, output_config={"effort": "high"}, thinking={"type": "adaptive"})
    assert body["reasoning"]["effort"] == "low"


def test_the_model_map_effort_is_the_default_when_the_request_has_none() -> None:
    """With no thinking settings, the model rule's effort applies (§1)."""
    body = {"model": "claude-opus-5-5", "messages": [{"role": "user", "content": "x"}]}
    assert messages_to_responses(body, model=MODEL, default_effort="high").body["reasoning"] == {
        "effort": "high"
    }


def test_a_tool_declared_twice_is_sent_once() -> None:
    """Duplicate tool names would be refused upstream: the first declaration wins."""
    tool = {"name": "Bash", "input_schema": {"type": "object"}}
    assert [
        t["name"] for t in translate(tools=[tool, {**tool, "description": "again"}])["tools"]
    ] == ["Bash"]
