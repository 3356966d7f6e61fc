"""The Codex Responses stream's vocabulary, as the Messages-side translator reads it
(protocols.md §1.7; stop reasons and usage after CPA)."""

from __future__ import annotations

from typing import Any

from trio_pool.translate.fields import as_int, dig

ITEM_EVENTS = frozenset(
    {
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
    }
)
TERMINAL_EVENTS = frozenset(
    {"response.completed", "response.incomplete", "response.failed", "error"}
)
# Codex's incomplete reasons as Anthropic stop reasons (CPA mapCodexStopReasonToClaude).
STOP_REASONS = {
    "max_output_tokens": "max_tokens",
    "max_tokens": "max_tokens",
    "content_filter": "refusal",
    "stop_sequence": "stop_sequence",
    "pause_turn": "pause_turn",
    "refusal": "refusal",
    "model_context_window_exceeded": "model_context_window_exceeded",
}


def messages_usage(usage: Any) -> dict[str, int]:
    """Codex usage in Anthropic's fields: cached input is reported apart (CPA)."""
    cached = as_int(dig(usage, "input_tokens_details", "cached_tokens"))
    return {
        "input_tokens": max(0, as_int(dig(usage, "input_tokens")) - cached),
        "cache_read_input_tokens": cached,
        "output_tokens": as_int(dig(usage, "output_tokens")),
    }
