"""Property tests: arbitrary bytes and JSON into every parser; only our own errors escape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.samples import NOW, credentials, head
from trio_pool.errors import TrioPoolError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS, ProviderName, Route, RouteKind
from trio_pool.providers.sse import SseEventTooLarge, SseParser

FUZZ = settings(max_examples=150, deadline=None)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
KEYS = [
    "type",
    "response",
    "usage",
    "error",
    "message",
    "code",
    "status",
    "details",
    "@type",
    "reason",
    "metadata",
    "retryDelay",
    "quotaResetDelay",
    "resets_at",
    "resets_in_seconds",
    "usageMetadata",
    "candidates",
    "finishReason",
    "delta",
    "stop_reason",
    "input_tokens",
    "output_tokens",
    "rate_limit",
    "primary_window",
    "buckets",
    "remainingFraction",
    "five_hour",
    "utilization",
    "access_token",
    "tokens",
    "claudeAiOauth",
    "accessToken",
    "expires_in",
    "session_id",
    "request",
    "prompt_cache_key",
    "user_id",
    "project",
]
TYPES = [
    "response.completed",
    "response.failed",
    "response.incomplete",
    "error",
    "codex.rate_limits",
    "message_start",
    "message_delta",
    "message_stop",
    "type.googleapis.com/google.rpc.ErrorInfo",
    "type.googleapis.com/google.rpc.RetryInfo",
]
# JSON shaped like the providers' payloads, so the parsers' deeper branches are reached.
shaped = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.sampled_from(TYPES)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)
HEADER_NAMES = [
    "content-type",
    "content-encoding",
    "retry-after",
    "x-codex-primary-used-percent",
    "x-codex-primary-window-minutes",
    "x-codex-primary-reset-at",
    "x-codex-secondary-reset-after-seconds",
    "x-codex-plan-type",
    "anthropic-ratelimit-unified-status",
    "anthropic-ratelimit-unified-reset",
    "anthropic-ratelimit-unified-5h-utilization",
    "anthropic-ratelimit-unified-7d_x-utilization",
    "anthropic-ratelimit-unified-representative-claim",
    "anthropic-beta",
    "connection",
]
header_values = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=20)
headers = st.lists(
    st.tuples(
        st.sampled_from(HEADER_NAMES) | st.text(max_size=10),
        header_values
        | st.sampled_from(["100", "1e400", "nan", "-5", "rejected", "text/event-stream", "zstd"]),
    ),
    max_size=8,
).map(tuple)
providers = st.sampled_from(PROVIDERS)


def sse_bytes(payloads: list[Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(p).encode() + b"\n\n" for p in payloads)


@FUZZ
@given(st.lists(st.binary(max_size=64), max_size=8), st.integers(1, 64))
def test_sse_parser_only_our_errors(chunks: list[bytes], limit: int) -> None:
    """Any bytes, in any split, give events or SseEventTooLarge, nothing else."""
    parser = SseParser(max_event_bytes=limit)
    for chunk in chunks:
        try:
            parser.feed(chunk)
        except SseEventTooLarge:
            pass


@FUZZ
@given(
    providers, headers, st.lists(st.binary(max_size=80), max_size=6), st.lists(shaped, max_size=4)
)
def test_observers_never_raise(
    name: ProviderName,
    response_headers: tuple[tuple[str, str], ...],
    chunks: list[bytes],
    payloads: list[Any],
) -> None:
    """Observers take any bytes, and provider-shaped events, without raising."""
    provider = PROVIDER_REGISTRY[name]
    for target, content_type in [("/x?alt=sse", "text/event-stream"), ("/x", "application/json")]:
        for body in (chunks, [sse_bytes(payloads)], [json.dumps(payloads).encode()]):
            response = (("content-type", content_type), *response_headers)
            observer = provider.observer(head("POST", target), response, NOW)
            for chunk in body:
                observer.feed(chunk)
            observer.finish()


@FUZZ
@given(providers, st.integers(100, 599), headers, st.binary(max_size=200), shaped)
def test_classify_and_quota_never_raise(
    name: ProviderName,
    status: int,
    response_headers: tuple[tuple[str, str], ...],
    body: bytes,
    payload: Any,
) -> None:
    """classify, read_quota and parse_usage accept any status, headers and body."""
    provider = PROVIDER_REGISTRY[name]
    for raw in (body, json.dumps(payload).encode(), json.dumps({"error": payload}).encode()):
        outcome = provider.classify(status, response_headers, raw, NOW)
        assert outcome.status == status
        provider.parse_usage(status, raw, NOW)
    provider.read_quota(response_headers, NOW)


@FUZZ
@given(providers, json_values | shaped, st.integers(100, 599), st.binary(max_size=100))
def test_credentials_only_our_errors(
    name: ProviderName, document: Any, status: int, body: bytes
) -> None:
    """parse_credentials raises only CredentialsError; refresh_result never raises."""
    provider = PROVIDER_REGISTRY[name]
    for candidate in (document, {"tokens": document}, {"claudeAiOauth": document}):
        try:
            provider.parse_credentials(candidate)
        except TrioPoolError:
            pass
        if isinstance(candidate, dict):
            provider.refresh_result(status, body, candidate, NOW)
            provider.refresh_result(
                200,
                json.dumps({"access_token": "a", "expires_in": document}).encode(),
                candidate,
                NOW,
            )


@FUZZ
@given(providers, headers, st.binary(max_size=120), shaped)
def test_conversation_key_and_prepare_never_raise(
    name: ProviderName, request_headers: tuple[tuple[str, str], ...], body: bytes, payload: Any
) -> None:
    """Any request body (not JSON, zstd-labelled junk, odd JSON) is handled without raising."""
    provider = PROVIDER_REGISTRY[name]
    route = Route(name, RouteKind.PROXY, "http://127.0.0.1:9/x")
    for raw in (
        body,
        json.dumps(payload).encode(),
        json.dumps({"project": "p", "metadata": payload}).encode(),
    ):
        client = head("POST", "/x", *request_headers)
        provider.conversation_key(client, raw)
        prepared = provider.prepare(route, client, raw, credentials())
        assert ("authorization", "Bearer ACCESS-of-the-account") in prepared.headers


@pytest.mark.parametrize("name", PROVIDERS)
def test_json_buffer_is_bounded(name: ProviderName) -> None:
    """A JSON body beyond the buffer limit is simply not observed (no error, no usage)."""
    observer = PROVIDER_REGISTRY[name].observer(
        head("POST", "/x"), (("content-type", "application/json"),), NOW
    )
    chunk = b" " * (1024 * 1024)
    for _ in range(5):
        assert observer.feed(chunk) is None
    assert observer.feed(b'{"usage":{"input_tokens":1}}') is None
    assert observer.finish() is None
