"""Upstream errors in each client's shape: §8 vectors T36, T39, T40 and the §6 table."""

from __future__ import annotations

from typing import Any

import pytest

from trio_pool.translate.errors import (
    claude_to_chat_error,
    claude_to_responses_error,
    codex_stream_error,
    codex_to_chat_error,
    codex_to_messages_error,
    is_handshake_event,
    is_retryable_failure,
)

NOW = 1_795_000_000.0


def test_t36_claude_quota_exhaustion_is_codex_usage_limit_reached() -> None:
    """T36: 429 + unified-status rejected -> Codex usage_limit_reached with resets_at."""
    headers = {
        "anthropic-ratelimit-unified-status": "rejected",
        "anthropic-ratelimit-unified-reset": "1795300000",
    }
    body = {"type": "error", "error": {"type": "rate_limit_error", "message": "limit"}}
    reply = claude_to_responses_error(429, body, headers, NOW)
    assert reply.status == 429
    assert reply.body["error"]["type"] == "usage_limit_reached"
    assert reply.body["error"]["resets_at"] == 1795300000
    assert reply.body["error"]["resets_in_seconds"] == 300000
    assert ("retry-after", "300000") in reply.headers


def test_claude_throttles_become_codex_codes_it_retries() -> None:
    """Other 429 -> rate_limit_exceeded; 529 -> 503 server_is_overloaded; too long -> context."""
    assert (
        claude_to_responses_error(429, {}, {"retry-after": "7"}, NOW).body["error"]["code"]
        == "rate_limit_exceeded"
    )
    overloaded = claude_to_responses_error(
        529, {"error": {"type": "overloaded_error", "message": "o"}}, {}, NOW
    )
    assert (overloaded.status, overloaded.body["error"]["code"]) == (503, "server_is_overloaded")
    too_long = {
        "error": {"type": "invalid_request_error", "message": "prompt is too long: 300000 tokens"}
    }
    assert (
        claude_to_responses_error(400, too_long, {}, NOW).body["error"]["code"]
        == "context_length_exceeded"
    )
    assert (
        claude_to_responses_error(401, {"error": {"type": "authentication_error"}}, {}, NOW).status
        == 401
    )


def test_t39_codex_usage_limit_is_a_rate_limit_for_claude_code_and_chat() -> None:
    """T39: usage_limit_reached with resets_in_seconds 120 -> 429 + retry-after 120."""
    body = {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "resets_in_seconds": 120,
        }
    }
    claude = codex_to_messages_error(429, body, {}, NOW)
    assert claude.status == 429
    assert claude.body == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "The usage limit has been reached"},
    }
    assert ("retry-after", "120") in claude.headers
    chat = codex_to_chat_error(429, body, {}, NOW)
    assert chat.status == 429
    assert chat.body["error"]["type"] == "rate_limit_error"
    assert chat.body["error"]["code"] == "rate_limit_exceeded"
    assert ("retry-after", "120") in chat.headers


def test_t39_resets_at_wins_and_retry_after_is_at_least_one() -> None:
    """retry-after = resets_at - now, rounded up, never below 1; default when unknown."""
    at = {
        "error": {"type": "usage_limit_reached", "resets_at": NOW + 30.2, "resets_in_seconds": 999}
    }
    assert ("retry-after", "31") in codex_to_messages_error(429, at, {}, NOW).headers
    past = {"error": {"type": "usage_limit_reached", "resets_at": NOW - 50}}
    assert ("retry-after", "1") in codex_to_messages_error(429, past, {}, NOW).headers
    assert ("retry-after", "60") in codex_to_messages_error(429, {}, {}, NOW).headers


def test_t40_codex_detail_becomes_an_invalid_request_error() -> None:
    """T40: 400 {"detail": "Unsupported parameter: temperature"} -> invalid_request_error."""
    reply = codex_to_messages_error(400, {"detail": "Unsupported parameter: temperature"}, {}, NOW)
    assert reply.status == 400
    assert reply.body["error"] == {
        "type": "invalid_request_error",
        "message": "Unsupported parameter: temperature",
    }


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            503,
            {"error": {"code": "server_is_overloaded", "message": "busy"}},
            (529, "overloaded_error"),
        ),
        (500, {}, (529, "overloaded_error")),
        (
            400,
            {"error": {"code": "context_length_exceeded", "message": "too many"}},
            (400, "invalid_request_error"),
        ),
        (400, {"error": {"code": "cyber_policy", "message": "no"}}, (400, "invalid_request_error")),
        (
            403,
            {"error": {"type": "usage_not_included", "message": "plan"}},
            (403, "permission_error"),
        ),
        (429, {"error": {"type": "usage_not_included"}}, (403, "permission_error")),
        (401, {}, (401, "authentication_error")),
        (404, {}, (404, "not_found_error")),
        (413, {}, (413, "request_too_large")),
    ],
    ids=[
        "overloaded",
        "5xx",
        "context",
        "cyber",
        "not-included",
        "not-included-429",
        "401",
        "404",
        "413",
    ],
)
def test_codex_errors_map_to_anthropic_types(
    status: int, body: dict[str, Any], expected: tuple[int, str]
) -> None:
    """§6: Codex errors by status and code -> Anthropic status and error type."""
    reply = codex_to_messages_error(status, body, {}, NOW)
    assert (reply.status, reply.body["error"]["type"]) == expected


def test_context_length_is_reported_as_prompt_too_long() -> None:
    """context_length_exceeded reads "prompt is too long" like Anthropic's own error [?]."""
    body = {"error": {"code": "context_length_exceeded", "message": "too many"}}
    assert (
        codex_to_messages_error(400, body, {}, NOW)
        .body["error"]["message"]
        .startswith("prompt is too long")
    )
    assert codex_stream_error(body["error"])["error"]["message"].startswith("prompt is too long")


def test_codex_overload_is_a_503_for_chat_clients() -> None:
    """Chat clients see 503 server_error for Codex overload."""
    reply = codex_to_chat_error(
        503, {"error": {"code": "server_is_overloaded", "message": "b"}}, {}, NOW
    )
    assert (reply.status, reply.body["error"]["type"], reply.body["error"]["code"]) == (
        503,
        "server_error",
        "server_is_overloaded",
    )


def test_claude_errors_for_chat_clients() -> None:
    """Claude 429 -> 429 rate_limit_exceeded with retry-after; 529 -> 503."""
    limited = claude_to_chat_error(
        429, {"error": {"type": "rate_limit_error", "message": "m"}}, {"retry-after": "12"}, NOW
    )
    assert limited.status == 429
    assert ("retry-after", "12") in limited.headers
    assert claude_to_chat_error(529, {}, {}, NOW).status == 503


def test_handshake_events_and_retryable_failures() -> None:
    """Only events that come before content are handshake; rate/overload failures retry."""
    for kind in (
        "response.created",
        "response.in_progress",
        "codex.rate_limits",
        "codex.response.metadata",
    ):
        assert is_handshake_event((kind, {"type": kind}))
    assert not is_handshake_event(
        ("response.output_item.added", {"type": "response.output_item.added"})
    )
    assert not is_handshake_event(("x", None))
    overloaded = (
        "response.failed",
        {"type": "response.failed", "response": {"error": {"code": "server_is_overloaded"}}},
    )
    assert is_retryable_failure(overloaded)
    invalid = (
        "response.failed",
        {"type": "response.failed", "response": {"error": {"code": "context_length_exceeded"}}},
    )
    assert not is_retryable_failure(invalid)
    assert is_retryable_failure(("error", {"type": "error", "error": {"type": "overloaded_error"}}))
    assert not is_retryable_failure(("error", "garbage"))
