"""Thinking signatures: encoding, and stripping ours before a request goes to Anthropic
(§3.3): switching a conversation back to a Claude model must work."""

from __future__ import annotations

import copy
from typing import Any

from trio_pool.translate.signatures import (
    decode_signature,
    encode_signature,
    strip_foreign_thinking,
)


def test_signature_round_trip() -> None:
    """encode then decode gives the item id and encrypted content back."""
    signature = encode_signature("rs_1", "gAAAAX:with:colons")
    assert signature == "tp1:codex:cnNfMQ:gAAAAX:with:colons"
    assert decode_signature(signature) == ("rs_1", "gAAAAX:with:colons")
    assert decode_signature("EqQBCkYI") is None
    assert decode_signature("tp1:codex:%%%:x") is None
    assert decode_signature("tp1:codex:cnNfMQ:") is None


def conversation(signature: str) -> dict[str, Any]:
    return {
        "model": "claude-opus-5-5",
        "messages": [
            {"role": "user", "content": "run"},
            {
                "role": "assistant",
                "content": [{"type": "thinking", "thinking": "", "signature": signature}],
            },
            {"role": "user", "content": [{"type": "text", "text": "now claude"}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "p", "signature": signature},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}],
            },
        ],
    }


def test_our_thinking_blocks_are_stripped_and_empty_turns_dropped() -> None:
    """No tp1 block reaches Anthropic; a thinking-only turn goes and its neighbours merge."""
    body = conversation("tp1:codex:cnNfMQ:gAAAAX")
    original = copy.deepcopy(body)
    stripped = strip_foreign_thinking(body)
    assert body == original  # the input is not modified
    assert stripped is not None
    assert "tp1:" not in repr(stripped)
    assert [m["role"] for m in stripped["messages"]] == ["user", "assistant", "user"]
    assert stripped["messages"][0]["content"] == [
        {"type": "text", "text": "run"},
        {"type": "text", "text": "now claude"},
    ]
    assert stripped["messages"][1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
    ]


def test_openai_and_empty_signatures_are_stripped_too() -> None:
    """gAAAA (CPA's raw encrypted content) and empty signatures are never Anthropic's."""
    for signature in ("gAAAAB", ""):
        stripped = strip_foreign_thinking(conversation(signature))
        assert stripped is not None
        assert not any(
            b.get("type") == "thinking"
            for m in stripped["messages"]
            for b in m["content"]
            if isinstance(b, dict)
        )


def test_a_native_conversation_is_left_alone() -> None:
    """Anthropic's own signatures pass: None means "forward the original bytes"."""
    assert strip_foreign_thinking(conversation("EqQBCkYIBxgCKkA")) is None
    assert strip_foreign_thinking({"messages": "garbage"}) is None
    assert strip_foreign_thinking("garbage") is None
