"""Answers given without an upstream: count_tokens (T32), the quota probe, /v1/models."""

from __future__ import annotations

import json
import math

from tests.translate.captures import claude_code_oauth_body
from trio_pool.translate.local_answers import (
    anthropic_model_list,
    count_tokens_reply,
    estimate_input_tokens,
    is_quota_probe,
    openai_model_list,
    quota_probe_reply,
)


def test_t32_count_tokens_counts_system_tools_and_texts() -> None:
    """T32: N = ceil(chars(system + json(tools) + texts) / 4) > 0, answered locally."""
    body = claude_code_oauth_body()
    body.pop("stream")
    system = [b["text"] for b in body["system"][1:]]
    tools = json.dumps(body["tools"], ensure_ascii=False, separators=(",", ":"))
    texts = [b["text"] for m in body["messages"] for b in m["content"]]
    expected = math.ceil((sum(map(len, system)) + len(tools) + sum(map(len, texts))) / 4)
    assert count_tokens_reply(body) == {"input_tokens": expected}
    assert expected > 0


def test_count_tokens_includes_tool_calls_results_and_attachments() -> None:
    """Tool blocks add their JSON and text; images add a fixed estimate."""
    plain = {"messages": [{"role": "user", "content": "x"}]}
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "A" * 10},
    }
    rich = {
        "messages": [
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "Bash", "input": {"c": "ls"}}],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t",
                        "content": [{"type": "text", "text": "a" * 400}, image],
                    }
                ],
            },
        ]
    }
    assert estimate_input_tokens(rich) > estimate_input_tokens(plain) + 1600
    assert estimate_input_tokens({}) == 1
    assert estimate_input_tokens("not a body") == 1


def test_quota_probe_is_recognised_and_answered_locally() -> None:
    """Claude Code's max_tokens:1 "quota" probe gets a one-token local answer."""
    probe = {
        "model": "gpt-6.1-sol",
        "max_tokens": 1,
        "messages": [{"role": "user", "content": "quota"}],
    }
    assert is_quota_probe(probe)
    assert not is_quota_probe({**probe, "max_tokens": 2})
    assert not is_quota_probe({**probe, "messages": [{"role": "user", "content": "hello"}]})
    reply = quota_probe_reply(probe)
    assert reply["type"] == "message"
    assert reply["model"] == "gpt-6.1-sol"
    assert reply == quota_probe_reply(probe)


def test_model_lists_in_each_clients_format() -> None:
    """/v1/models: an OpenAI list and an Anthropic list from the same ids, deduplicated."""
    ids = ["gpt-6.1-sol", "claude-opus-5-5", "gpt-6.1-sol"]
    openai = openai_model_list(ids)
    assert openai["object"] == "list"
    assert [(m["id"], m["owned_by"]) for m in openai["data"]] == [
        ("gpt-6.1-sol", "openai"),
        ("claude-opus-5-5", "anthropic"),
    ]
    anthropic = anthropic_model_list(ids)
    assert [m["id"] for m in anthropic["data"]] == ["gpt-6.1-sol", "claude-opus-5-5"]
    assert anthropic["first_id"] == "gpt-6.1-sol"
    assert anthropic["last_id"] == "claude-opus-5-5"
    assert anthropic["has_more"] is False
    assert anthropic_model_list([])["first_id"] is None
