from __future__ import annotations

import json
import urllib.parse

import attrs
import pytest

from tests.providers.samples import (
    GEMINI_STREAM,
    GEMINI_USAGE,
    JSON_HEADERS,
    NOW,
    SSE_HEADERS,
    credentials,
    head,
    make_jwt,
    run_observer,
)
from trio_pool.providers.base import OutcomeKind, RefreshVerdict, Route, RouteKind
from trio_pool.providers.gemini import GeminiProvider
from trio_pool.providers.sse import SseParser

GEMINI = GeminiProvider()
UPSTREAMS = {"upstream": "https://cloudcode-pa.googleapis.com"}
STREAM_TARGET = "/v1internal:streamGenerateContent?alt=sse"


@pytest.mark.parametrize(
    ("method", "target", "url"),
    [
        (
            "POST",
            STREAM_TARGET,
            "https://cloudcode-pa.googleapis.com/v1internal:streamGenerateContent?alt=sse",
        ),
        (
            "POST",
            "/v1internal:loadCodeAssist",
            "https://cloudcode-pa.googleapis.com/v1internal:loadCodeAssist",
        ),
        (
            "GET",
            "/v1internal/operations/op-1",
            "https://cloudcode-pa.googleapis.com/v1internal/operations/op-1",
        ),
        ("POST", "/v1internal/streamGenerateContent", None),
        ("POST", "/v1/messages", None),
    ],
)
def test_route_table(method: str, target: str, url: str | None) -> None:
    """Colon methods and operations go to the upstream with the query kept."""
    route = GEMINI.route(head(method, target), UPSTREAMS)
    assert (route.upstream_url if route else None) == url


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            b'{"model":"m","project":"p","user_prompt_id":"sess-1########3","request":{"contents":[],"session_id":"sess-1"}}',
            "sess-1",
        ),
        (b'{"model":"m","user_prompt_id":"sess-2########7","request":{"contents":[]}}', "sess-2"),
        (b'{"user_prompt_id":"sess-3"}', "sess-3"),
        (b'{"request":{"session_id":5}}', None),
        (b'["session_id"]', None),
        (None, None),
    ],
)
def test_conversation_key(body: bytes | None, expected: str | None) -> None:
    """request.session_id, then the user_prompt_id prefix; never raises."""
    key = GEMINI.conversation_key(head("POST", STREAM_TARGET), body)
    assert (key.value if key else None) == expected


ROUTE = Route(
    "gemini", RouteKind.PROXY, "https://cloudcode-pa.googleapis.com/v1internal:generateContent"
)


def test_prepare_rewrites_project() -> None:
    """The body's project becomes the account's; other keys and order are kept."""
    body = (
        b'{"model": "gemini-3-flash", "project": "client-project", "request": {"session_id": "s"}}'
    )
    client = head(
        "POST",
        "/v1internal:generateContent",
        ("authorization", "Bearer ya29.client"),
        ("x-goog-api-client", "gl-node/20"),
    )
    prepared = GEMINI.prepare(ROUTE, client, body, credentials())
    assert json.loads(prepared.body) == {
        "model": "gemini-3-flash",
        "project": "pool-project",
        "request": {"session_id": "s"},
    }
    assert list(json.loads(prepared.body)) == ["model", "project", "request"]
    assert prepared.headers == (
        ("x-goog-api-client", "gl-node/20"),
        ("authorization", "Bearer ACCESS-of-the-account"),
    )


def test_prepare_load_code_assist_and_untouched_bodies() -> None:
    """loadCodeAssist project fields are rewritten; bodies needing nothing keep their bytes."""
    load = b'{"cloudaicompanionProject":"c","metadata":{"pluginType":"GEMINI","duetProject":"c"}}'
    side = attrs.evolve(ROUTE, inference=False)
    prepared = GEMINI.prepare(side, head("POST", "/v1internal:loadCodeAssist"), load, credentials())
    assert json.loads(prepared.body) == {
        "cloudaicompanionProject": "pool-project",
        "metadata": {"pluginType": "GEMINI", "duetProject": "pool-project"},
    }
    for body in (
        b'{"project": "pool-project"}',
        b'{"metadata": {"pluginType":"GEMINI"}}',
        b"{not json project",
        b"",
    ):
        assert GEMINI.prepare(side, head("POST", "/v1internal:x"), body, credentials()).body is body
    turn = GEMINI.prepare(ROUTE, head("POST", STREAM_TARGET), b'{"request":{}}', credentials())
    assert json.loads(turn.body) == {"request": {}, "project": "pool-project"}
    unknown = credentials(project=None)
    body = b'{"project":"client"}'
    assert GEMINI.prepare(ROUTE, head("POST", "/v1internal:x"), body, unknown).body is body


QUOTA_429 = b'{"error":{"code":429,"message":"You have exhausted your capacity on this model. Your quota will reset after 56s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"RATE_LIMIT_EXCEEDED","domain":"cloudcode-pa.googleapis.com","metadata":{"model":"gemini-2.5-pro","quotaResetDelay":"56s"}},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"56s"}]}}'
EXHAUSTED_429 = b'{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA_EXHAUSTED","domain":"cloudcode-pa.googleapis.com","metadata":{"quotaResetDelay":"539.477544ms"}}]}}'
DAILY_429 = b'{"error":{"code":429,"message":"daily","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"QUOTA_EXHAUSTED"}]}}'
SHORT_RETRY = b'{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"slow","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"0.539477544s"}]}}'
CAPACITY_429 = b'{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"no capacity","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"MODEL_CAPACITY_EXHAUSTED"}]}}'
BARE_429 = b'[{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","message":"Resource has been exhausted"}}]'


def test_classify_table() -> None:
    """RESOURCE_EXHAUSTED with QUOTA_EXHAUSTED or a RetryInfo is QUOTA until now + delay."""
    cases = [
        (200, b"", OutcomeKind.OK, None),
        (429, QUOTA_429, OutcomeKind.QUOTA, NOW + 56),
        (429, EXHAUSTED_429, OutcomeKind.QUOTA, NOW + 0.539477544),
        (429, DAILY_429, OutcomeKind.QUOTA, None),
        (429, SHORT_RETRY, OutcomeKind.QUOTA, NOW + 0.539477544),
        (429, CAPACITY_429, OutcomeKind.THROTTLED, None),
        (429, BARE_429, OutcomeKind.THROTTLED, None),
        (
            403,
            b'{"error":{"code":403,"status":"PERMISSION_DENIED","message":"verify","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"VALIDATION_REQUIRED"}]}}',
            OutcomeKind.FORBIDDEN,
            None,
        ),
        (401, b"", OutcomeKind.AUTH, None),
        (503, b'{"error":{"code":503,"status":"UNAVAILABLE"}}', OutcomeKind.TRANSIENT, None),
        (404, b"", OutcomeKind.CLIENT_ERROR, None),
    ]
    for status, body, kind, retry_at in cases:
        outcome = GEMINI.classify(status, (), body, NOW)
        assert outcome.kind is kind, body
        assert outcome.retry_at == pytest.approx(retry_at) if retry_at else outcome.retry_at is None
    assert "VALIDATION_REQUIRED" in GEMINI.classify(403, (), cases[7][1], NOW).reason


def test_observer_every_split_same_usage() -> None:
    """The last usageMetadata and the finishReason, whatever the split (\\r\\n lines)."""
    for i in range(len(GEMINI_STREAM) + 1):
        observer = GEMINI.observer(head("POST", STREAM_TARGET), SSE_HEADERS, NOW)
        usage, complete, _ = run_observer(observer, [GEMINI_STREAM[:i], GEMINI_STREAM[i:]])
        assert (usage, complete) == (GEMINI_USAGE, True), i


def test_observer_in_band_error_and_json_body() -> None:
    """A data: {"error": ...} chunk is a failure; generateContent JSON gives usage at finish."""
    error = b'data: {"error":{"code":503,"status":"UNAVAILABLE","message":"overloaded"}}\n\n'
    _, complete, events = run_observer(
        GEMINI.observer(head("POST", STREAM_TARGET), (), NOW), [error]
    )
    assert not complete
    assert events[0].failure is not None
    assert events[0].failure.kind is OutcomeKind.TRANSIENT
    body = b'{"response":{"candidates":[{"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":4,"candidatesTokenCount":1}}}'
    usage, complete, _ = run_observer(
        GEMINI.observer(head("POST", "/v1internal:generateContent"), JSON_HEADERS, NOW), [body]
    )
    assert usage is not None
    assert (usage.input, usage.output) == (4, 1)
    assert complete


def test_error_shapes() -> None:
    """Google RPC error JSON with the status name, and the data: {"error"} stream line."""
    for status, name in [
        (429, "RESOURCE_EXHAUSTED"),
        (503, "UNAVAILABLE"),
        (404, "NOT_FOUND"),
        (400, "INVALID_ARGUMENT"),
        (401, "UNAUTHENTICATED"),
        (500, "INTERNAL"),
        (504, "DEADLINE_EXCEEDED"),
    ]:
        headers, body = GEMINI.error_response(status, "m")
        assert headers == [("content-type", "application/json")]
        assert json.loads(body) == {"error": {"code": status, "status": name, "message": "m"}}
    raw = GEMINI.stream_error_event("gone", kind="upstream_error")
    (event,) = SseParser().feed(raw)
    assert json.loads(event.data) == {
        "error": {"code": 503, "status": "UNAVAILABLE", "message": "gone"}
    }


DOCUMENT = {
    "access_token": "ya29.OLD",
    "refresh_token": "1//REFRESH",
    "scope": "https://www.googleapis.com/auth/cloud-platform openid",
    "token_type": "Bearer",
    "id_token": make_jwt({"email": "g@example.com", "exp": NOW}),
    "expiry_date": 1_800_000_000_000,
    "cloudaicompanionProject": {"id": "proj-1"},
}


def test_credentials_refresh_and_merge() -> None:
    """oauth_creds.json parses; the refresh is form-encoded; the refresh token is kept."""
    creds = GEMINI.parse_credentials(DOCUMENT)
    assert (creds.email, creds.expires_at, creds.project) == ("g@example.com", NOW, "proj-1")
    request = GEMINI.refresh_request(creds, "https://oauth2.googleapis.com/token")
    form = dict(urllib.parse.parse_qsl(request.body.decode()))
    assert form["grant_type"] == "refresh_token"
    assert form["refresh_token"] == "1//REFRESH"
    assert form["client_id"].startswith("681255809395-")
    assert form["client_secret"].startswith("GOCSPX-")
    assert ("content-type", "application/x-www-form-urlencoded") in request.headers
    result = GEMINI.refresh_result(
        200, b'{"access_token":"ya29.NEW","expires_in":3599}', DOCUMENT, NOW
    )
    assert result.verdict is RefreshVerdict.OK
    assert result.document is not None
    assert result.document["access_token"] == "ya29.NEW"
    assert result.document["refresh_token"] == "1//REFRESH"
    assert result.document["expiry_date"] == int((NOW + 3599) * 1000)
    assert result.document["cloudaicompanionProject"] == {"id": "proj-1"}
    invalid = b'{"error":"invalid_grant","error_description":"Token has been expired or revoked."}'
    assert GEMINI.refresh_result(400, invalid, DOCUMENT, NOW).verdict is RefreshVerdict.PERMANENT


def test_usage_and_project_lookup() -> None:
    """retrieveUserQuota needs a project; buckets become per-model windows; loadCodeAssist names it."""
    assert GEMINI.usage_request(credentials(project=None), UPSTREAMS) is None
    request = GEMINI.usage_request(credentials(), UPSTREAMS)
    assert request is not None
    assert request.method == "POST"
    assert request.url == "https://cloudcode-pa.googleapis.com/v1internal:retrieveUserQuota"
    assert json.loads(request.body) == {"project": "pool-project"}
    body = b'{"buckets":[{"remainingAmount":"10","remainingFraction":0.25,"resetTime":"2027-01-15T09:00:00Z","tokenType":"REQUESTS","modelId":"gemini-2.5-pro"},{"remainingFraction":1,"modelId":"gemini-2.5-flash"}]}'
    reading = GEMINI.parse_usage(200, body, NOW)
    assert reading is not None
    assert not reading.exhausted
    assert [(w.name, w.used, w.resets_at) for w in reading.windows] == [
        ("gemini-2.5-pro", 0.75, NOW + 3600),
        ("gemini-2.5-flash", 0.0, None),
    ]


def test_observer_usage_before_a_finish_chunk_without_usage_and_at_end() -> None:
    """Usage from an earlier chunk counts when the finish chunk has none, or at stream end."""
    usage_chunk = b'data: {"response":{"candidates":[{"content":{"parts":[{"text":"a"}]}}],"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3}}}\n\n'
    finish_chunk = b'data: {"response":{"candidates":[{"finishReason":"STOP"}]}}\n\n'
    observer = GEMINI.observer(head("POST", STREAM_TARGET), SSE_HEADERS, NOW)
    usage, complete, _ = run_observer(observer, [usage_chunk, finish_chunk])
    assert usage is not None
    assert (usage.input, usage.output) == (8, 3)
    assert complete
    observer = GEMINI.observer(head("POST", STREAM_TARGET), SSE_HEADERS, NOW)
    usage, complete, _ = run_observer(observer, [usage_chunk])
    assert usage is not None
    assert usage.input == 8
    assert not complete


def test_set_up_calls_without_a_project_get_the_accounts() -> None:
    """The CLI's own loadCodeAssist names no project (no GOOGLE_CLOUD_PROJECT): the serving
    account's goes in, so a Standard tier answers it and the CLI does not stop with
    ProjectIdRequiredError."""
    body = b'{"metadata": {"ideType": "IDE_UNSPECIFIED", "pluginType": "GEMINI"}}'
    client = head("POST", "/v1internal:loadCodeAssist", ("authorization", "Bearer ya29.client"))
    route = Route("gemini", RouteKind.PROXY, ROUTE.upstream_url, inference=False)
    prepared = GEMINI.prepare(route, client, body, credentials())
    assert json.loads(prepared.body) == {
        "metadata": {"ideType": "IDE_UNSPECIFIED", "pluginType": "GEMINI"},
        "cloudaicompanionProject": "pool-project",
    }
