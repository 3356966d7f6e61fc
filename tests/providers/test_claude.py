from __future__ import annotations

import json

import pytest

from tests.providers.samples import (
    CLAUDE_STREAM,
    CLAUDE_USAGE,
    JSON_HEADERS,
    NOW,
    SSE_HEADERS,
    credentials,
    head,
    run_observer,
)
from trio_pool.errors import CredentialsError
from trio_pool.providers.base import OutcomeKind, RefreshVerdict, Route, RouteKind
from trio_pool.providers.claude import ClaudeProvider
from trio_pool.providers.sse import SseParser

CLAUDE = ClaudeProvider()
UPSTREAMS = {"upstream": "https://api.anthropic.com"}
VERSION = ("anthropic-version", "2023-06-01")


@pytest.mark.parametrize(
    ("method", "target", "headers", "url"),
    [
        ("POST", "/v1/messages?beta=true", (), "https://api.anthropic.com/v1/messages?beta=true"),
        ("POST", "/v1/messages", (), "https://api.anthropic.com/v1/messages"),
        (
            "POST",
            "/v1/messages/count_tokens?beta=true",
            (),
            "https://api.anthropic.com/v1/messages/count_tokens?beta=true",
        ),
        ("GET", "/v1/models?limit=5", (VERSION,), "https://api.anthropic.com/v1/models?limit=5"),
        ("GET", "/v1/models", (), None),
        ("GET", "/v1/messages", (), None),
        ("POST", "/v1/responses", (), None),
    ],
)
def test_route_table(
    method: str, target: str, headers: tuple[tuple[str, str], ...], url: str | None
) -> None:
    """Messages with any query; models only with anthropic-version."""
    route = CLAUDE.route(head(method, target, *headers), UPSTREAMS)
    assert (route.upstream_url if route else None) == url


USER_ID_JSON = json.dumps({"device_id": "ab" * 32, "account_uuid": "", "session_id": "sess-json"})
USER_ID_LEGACY = (
    "user_"
    + "ab" * 32
    + "_account_1b2c3d4e-0000-0000-0000-000000000000_session_5e6f7a8b-1111-2222-3333-444444444444"
)


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        (
            (("X-Claude-Code-Session-Id", "sess-header"),),
            json.dumps({"metadata": {"user_id": USER_ID_JSON}}).encode(),
            "sess-header",
        ),
        (
            (),
            json.dumps({"model": "m", "metadata": {"user_id": USER_ID_JSON}}).encode(),
            "sess-json",
        ),
        (
            (),
            json.dumps({"metadata": {"user_id": USER_ID_LEGACY}}).encode(),
            "5e6f7a8b-1111-2222-3333-444444444444",
        ),
        ((), json.dumps({"metadata": {"user_id": "{broken"}}).encode(), None),
        ((), b'{"metadata": {"user_id": 7}}', None),
        ((), b"\xff\xfe", None),
        ((), None, None),
    ],
)
def test_conversation_key(
    headers: tuple[tuple[str, str], ...], body: bytes | None, expected: str | None
) -> None:
    """Session header first, then metadata.user_id in its JSON or legacy form; never raises."""
    key = CLAUDE.conversation_key(head("POST", "/v1/messages", *headers), body)
    assert (key.value if key else None) == expected
    assert key is None or not key.hard


ROUTE = Route("claude", RouteKind.PROXY, "https://api.anthropic.com/v1/messages?beta=true")


def test_prepare_api_key_client_gets_oauth() -> None:
    """x-api-key is dropped, the bearer set, the OAuth betas put where Claude Code puts them:
    oauth second (after claude-code), extended-cache-ttl last."""
    body = b'{"model":"claude","stream":true}'
    client = head(
        "POST",
        "/v1/messages?beta=true",
        ("x-api-key", "pool"),
        VERSION,
        ("anthropic-beta", "claude-code-20250219,effort-2025-11-24"),
        ("x-app", "cli"),
    )
    prepared = CLAUDE.prepare(ROUTE, client, body, credentials(access_token="sk-ant-oat01-account"))
    assert prepared.body is body
    assert prepared.headers == (
        VERSION,
        (
            "anthropic-beta",
            "claude-code-20250219,oauth-2025-04-20,effort-2025-11-24,extended-cache-ttl-2025-04-11",
        ),
        ("x-app", "cli"),
        ("authorization", "Bearer sk-ant-oat01-account"),
    )


def test_prepare_keeps_existing_oauth_beta_and_adds_missing_header() -> None:
    """No duplicate beta when the client already has it; the header is added when absent."""
    betas = ("anthropic-beta", "claude-code-20250219, oauth-2025-04-20")
    client = head("POST", "/v1/messages", ("authorization", "Bearer client"), betas)
    prepared = CLAUDE.prepare(ROUTE, client, b"{}", credentials())
    assert prepared.headers == (betas, ("authorization", "Bearer ACCESS-of-the-account"))
    bare = CLAUDE.prepare(ROUTE, head("POST", "/v1/messages"), b"{}", credentials())
    assert ("anthropic-beta", "oauth-2025-04-20,extended-cache-ttl-2025-04-11") in bare.headers


def test_prepare_orders_betas_as_claude_code_does() -> None:
    """Claude Code 2.1.330's API-key list becomes exactly its OAuth list."""
    api_key = (
        "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
        "per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,"
        "thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24"
    )
    oauth = (
        "claude-code-20250219,oauth-2025-04-20,interleaved-thinking-2025-05-14,"
        "context-management-2025-06-27,per-turn-control-2026-07-01,"
        "mid-conversation-tool-changes-2026-07-01,thinking-token-count-2026-05-13,"
        "advanced-tool-use-2025-11-20,effort-2025-11-24,extended-cache-ttl-2025-04-11"
    )
    client = head("POST", "/v1/messages", ("anthropic-beta", api_key))
    prepared = CLAUDE.prepare(ROUTE, client, b"{}", credentials())
    assert ("anthropic-beta", oauth) in prepared.headers
    # Two anthropic-beta fields become one, in place of the first.
    split = head(
        "POST", "/v1/messages", ("anthropic-beta", "a"), ("x", "1"), ("anthropic-beta", "b")
    )
    merged = CLAUDE.prepare(ROUTE, split, b"{}", credentials()).headers
    assert merged[:2] == (
        ("anthropic-beta", "oauth-2025-04-20,a,b,extended-cache-ttl-2025-04-11"),
        ("x", "1"),
    )


def unified(status: str, **extra: str) -> tuple[tuple[str, str], ...]:
    base = {
        "anthropic-ratelimit-unified-status": status,
        "anthropic-ratelimit-unified-reset": str(int(NOW) + 1800),
        "anthropic-ratelimit-unified-5h-utilization": "0.97",
        "anthropic-ratelimit-unified-5h-reset": str(int(NOW) + 1800),
        "anthropic-ratelimit-unified-7d-utilization": "0.4",
        "anthropic-ratelimit-unified-7d-reset": str(int(NOW) + 86400),
        "anthropic-ratelimit-unified-overage-utilization": "0.2",
        "anthropic-ratelimit-unified-representative-claim": "five_hour",
    }
    base.update(extra)
    return tuple(base.items())


def test_read_quota_unified_headers() -> None:
    """5h and 7d windows (0..1), overage ignored; rejected is exhausted until the unified reset."""
    reading = CLAUDE.read_quota(unified("allowed_warning"), NOW)
    assert reading is not None
    assert not reading.exhausted
    assert reading.resets_at is None
    assert [(w.name, w.used, w.window_s, w.resets_at) for w in reading.windows] == [
        ("5h", 0.97, 18000, NOW + 1800),
        ("7d", 0.4, 604800, NOW + 86400),
    ]
    rejected = CLAUDE.read_quota(unified("rejected"), NOW)
    assert rejected is not None
    assert rejected.exhausted
    assert rejected.resets_at == NOW + 1800
    assert CLAUDE.read_quota((("content-type", "x"),), NOW) is None


RATE_LIMIT_BODY = b'{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your account\'s rate limit. Please try again later."},"request_id":"req_1"}'
OVERLOADED_BODY = b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


def test_classify_table() -> None:
    """Each row of design.md §3.2 for Claude."""
    cases = [
        (200, unified("allowed"), b"", OutcomeKind.OK, None),
        (429, unified("rejected"), RATE_LIMIT_BODY, OutcomeKind.QUOTA, NOW + 1800),
        (429, unified("allowed"), RATE_LIMIT_BODY, OutcomeKind.THROTTLED, None),
        (429, (("retry-after", "1"),), RATE_LIMIT_BODY, OutcomeKind.THROTTLED, NOW + 1),
        (529, (), OVERLOADED_BODY, OutcomeKind.THROTTLED, None),
        (500, (), OVERLOADED_BODY, OutcomeKind.THROTTLED, None),
        (
            401,
            (),
            b'{"type":"error","error":{"type":"authentication_error","message":"OAuth token has expired."}}',
            OutcomeKind.AUTH,
            None,
        ),
        (
            403,
            (),
            b'{"type":"error","error":{"type":"permission_error","message":"This organization has been disabled."}}',
            OutcomeKind.ACCOUNT_ACTION,
            None,
        ),
        (
            500,
            (),
            b'{"type":"error","error":{"type":"api_error","message":"Internal"}}',
            OutcomeKind.TRANSIENT,
            None,
        ),
        (
            400,
            (),
            b'{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}',
            OutcomeKind.CLIENT_ERROR,
            None,
        ),
        (413, (), b"", OutcomeKind.CLIENT_ERROR, None),
        (
            403,
            (),
            b'{"type":"error","error":{"type":"permission_error","message":"OAuth token has been revoked. Please obtain a new token."}}',
            OutcomeKind.AUTH,
            None,
        ),
        (
            403,
            (("content-type", "text/html; charset=UTF-8"),),
            b"<html>",
            OutcomeKind.TRANSIENT,
            None,
        ),
        (403, (("cf-mitigated", "challenge"),), b"", OutcomeKind.TRANSIENT, None),
    ]
    for status, headers, body, kind, retry_at in cases:
        outcome = CLAUDE.classify(status, headers, body, NOW)
        assert (outcome.kind, outcome.retry_at) == (kind, retry_at), (status, body)
    disabled = CLAUDE.classify(403, (), cases[7][2], NOW)
    assert "organization has been disabled" in disabled.reason
    assert disabled.action is not None
    assert disabled.action.kind == "org_disabled"
    assert disabled.action.message == "This organization has been disabled."


def test_observer_every_split_same_usage() -> None:
    """message_start + message_delta usage and completion, whatever the split."""
    for i in range(len(CLAUDE_STREAM) + 1):
        observer = CLAUDE.observer(head("POST", "/v1/messages"), SSE_HEADERS, NOW)
        usage, complete, events = run_observer(observer, [CLAUDE_STREAM[:i], CLAUDE_STREAM[i:]])
        assert (usage, complete) == (CLAUDE_USAGE, True), i
        assert sum(e.complete for e in events) == 1


def test_observer_message_delta_alone_completes_and_error_event_fails() -> None:
    """Completion without message_stop; `event: error` overloaded is a THROTTLED failure."""
    stream = CLAUDE_STREAM.split(b"event: message_stop")[0]
    _, complete, _ = run_observer(
        CLAUDE.observer(head("POST", "/v1/messages"), SSE_HEADERS, NOW), [stream]
    )
    assert complete
    error = b"event: error\ndata: " + OVERLOADED_BODY + b"\n\n"
    _, complete, events = run_observer(
        CLAUDE.observer(head("POST", "/v1/messages"), SSE_HEADERS, NOW), [error]
    )
    assert not complete
    assert events[0].failure is not None
    assert events[0].failure.kind is OutcomeKind.THROTTLED


def test_observer_non_streaming_message() -> None:
    """A JSON message's usage is read at finish."""
    body = json.dumps(
        {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "content": [],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "cache_read_input_tokens": 2, "output_tokens": 1},
        }
    ).encode()
    usage, complete, _ = run_observer(
        CLAUDE.observer(head("POST", "/v1/messages"), JSON_HEADERS, NOW), [body]
    )
    assert usage is not None
    assert (usage.input, usage.cached, usage.output) == (5, 2, 1)
    assert complete
    counted = run_observer(
        CLAUDE.observer(head("POST", "/v1/messages/count_tokens"), JSON_HEADERS, NOW),
        [b'{"input_tokens":9}'],
    )
    assert counted == (None, False, [])


def test_error_shapes() -> None:
    """Anthropic error JSON typed by status or kind, and the `event: error` SSE event."""
    _, body = CLAUDE.error_response(429, "all cooling")
    assert json.loads(body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "all cooling"},
    }
    _, body = CLAUDE.error_response(503, "x", kind="overloaded_error")
    assert json.loads(body)["error"]["type"] == "overloaded_error"
    raw = CLAUDE.stream_error_event("upstream broke")
    (event,) = SseParser().feed(raw)
    assert event.event == "error"
    assert raw.endswith(b"\n\n")
    assert json.loads(event.data) == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream broke"},
    }
    overloaded = CLAUDE.stream_error_event("busy", kind="overloaded_error")
    assert b'"overloaded_error"' in overloaded


DOCUMENT = {
    "claudeAiOauth": {
        "accessToken": "sk-ant-oat01-OLD",
        "refreshToken": "sk-ant-ort01-OLD",
        "expiresAt": 1_800_000_000_000,
        "scopes": ["user:inference"],
        "subscriptionType": "max",
        "rateLimitTier": "default_claude_max_20x",
    },
    "mcpOAuth": {"kept": 1},
}


def test_credentials_refresh_and_merge() -> None:
    """The file parses; the refresh body is Claude Code's; the answer merges, unknowns kept."""
    creds = CLAUDE.parse_credentials(DOCUMENT)
    assert (creds.expires_at, creds.plan, creds.refresh_token) == (NOW, "max", "sk-ant-ort01-OLD")
    request = CLAUDE.refresh_request(creds, "https://platform.claude.com/v1/oauth/token")
    assert json.loads(request.body) == {
        "grant_type": "refresh_token",
        "refresh_token": "sk-ant-ort01-OLD",
        "client_id": "9d1c250a-e61b-44d9-88ed-5944d1962f5e",
        "scope": "user:profile user:inference user:sessions:claude_code user:mcp_servers user:file_upload",
    }
    result = CLAUDE.refresh_result(
        200, b'{"access_token":"sk-ant-oat01-NEW","expires_in":28800}', DOCUMENT, NOW
    )
    assert result.verdict is RefreshVerdict.OK
    assert result.document is not None
    oauth = result.document["claudeAiOauth"]
    assert (oauth["accessToken"], oauth["refreshToken"], oauth["expiresAt"]) == (
        "sk-ant-oat01-NEW",
        "sk-ant-ort01-OLD",
        int((NOW + 28800) * 1000),
    )
    assert oauth["rateLimitTier"] == "default_claude_max_20x"
    assert result.document["mcpOAuth"] == {"kept": 1}
    rotated = CLAUDE.refresh_result(
        200, b'{"access_token":"a","refresh_token":"r2","expires_in":10}', DOCUMENT, NOW
    )
    assert rotated.document is not None
    assert rotated.document["claudeAiOauth"]["refreshToken"] == "r2"
    assert (
        CLAUDE.refresh_result(400, b'{"error":"invalid_grant"}', DOCUMENT, NOW).verdict
        is RefreshVerdict.PERMANENT
    )
    assert CLAUDE.refresh_result(503, b"", DOCUMENT, NOW).verdict is RefreshVerdict.TRANSIENT
    with pytest.raises(CredentialsError, match=r"claudeAiOauth\.accessToken"):
        CLAUDE.parse_credentials({"claudeAiOauth": {"refreshToken": "x"}})


def test_usage_poll() -> None:
    """/api/oauth/usage (percent 0-100, ISO resets) becomes windows; 5h at 100 % is exhausted."""
    request = CLAUDE.usage_request(credentials(), UPSTREAMS)
    assert request is not None
    assert request.url == "https://api.anthropic.com/api/oauth/usage"
    assert ("anthropic-beta", "oauth-2025-04-20") in request.headers
    body = json.dumps(
        {
            "five_hour": {"utilization": 100.0, "resets_at": "2027-01-15T09:00:00+00:00"},
            "seven_day": {"utilization": 12, "resets_at": "2027-01-20T08:00:00.5Z"},
            "seven_day_opus": None,
            "extra_usage": {"is_enabled": False},
        }
    ).encode()
    reading = CLAUDE.parse_usage(200, body, NOW)
    assert reading is not None
    assert reading.exhausted
    assert reading.resets_at == NOW + 3600
    assert [(w.name, w.used) for w in reading.windows] == [("5h", 1.0), ("7d", 0.12)]
