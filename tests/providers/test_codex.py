from __future__ import annotations

import json

import pytest
import zstandard

from tests.providers.samples import (
    CODEX_STREAM,
    CODEX_USAGE,
    JSON_HEADERS,
    NOW,
    SSE_HEADERS,
    credentials,
    head,
    make_jwt,
    run_observer,
)
from trio_pool.errors import CredentialsError
from trio_pool.providers.base import OutcomeKind, RefreshVerdict, Route, RouteKind
from trio_pool.providers.codex import BodyDecodeError, CodexProvider, decode_body, inband_failure
from trio_pool.providers.sse import SseParser

CODEX = CodexProvider()
UPSTREAMS = {
    "upstream": "https://chatgpt.com/backend-api/codex",
    "backend": "https://chatgpt.com/backend-api",
}


@pytest.mark.parametrize(
    ("method", "target", "headers", "expected"),
    [
        (
            "POST",
            "/v1/responses",
            (),
            (RouteKind.PROXY, "https://chatgpt.com/backend-api/codex/responses"),
        ),
        (
            "POST",
            "/v1/responses/compact",
            (),
            (RouteKind.PROXY, "https://chatgpt.com/backend-api/codex/responses/compact"),
        ),
        (
            "GET",
            "/v1/models?client_version=0.169.0",
            (),
            (
                RouteKind.PROXY,
                "https://chatgpt.com/backend-api/codex/models?client_version=0.169.0",
            ),
        ),
        (
            "POST",
            "/backend-api/codex/responses",
            (),
            (RouteKind.PROXY, "https://chatgpt.com/backend-api/codex/responses"),
        ),
        (
            "GET",
            "/v1/responses",
            (("upgrade", "websocket"), ("connection", "Upgrade")),
            (RouteKind.WEBSOCKET, "wss://chatgpt.com/backend-api/codex/responses"),
        ),
        (
            "GET",
            "/backend-api/wham/usage",
            (),
            (RouteKind.POOL_USAGE, "https://chatgpt.com/backend-api/wham/usage"),
        ),
        (
            "GET",
            "/backend-api/ps/plugins/installed?limit=200",
            (),
            (RouteKind.PROXY, "https://chatgpt.com/backend-api/ps/plugins/installed?limit=200"),
        ),
        ("GET", "/v1/models", (("anthropic-version", "2023-06-01"),), None),
        ("POST", "/v1/messages", (), None),
        ("GET", "/v1/responses", (), None),
        ("GET", "/healthz", (), None),
    ],
)
def test_route_table(
    method: str,
    target: str,
    headers: tuple[tuple[str, str], ...],
    expected: tuple[RouteKind, str] | None,
) -> None:
    """The Codex path table of design.md §2.4, query kept, /v1/models only without anthropic-version."""
    route = CODEX.route(head(method, target, *headers), UPSTREAMS)
    assert (route.kind, route.upstream_url) == expected if route else expected is None


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ((("x-codex-turn-state", "ts-1"), ("session-id", "s-1")), None, ("ts-1", True)),
        (
            (("session-id", "019a-thread"), ("thread-id", "019a-thread")),
            None,
            ("019a-thread", False),
        ),
        ((("session_id", "s-2"),), None, ("s-2", False)),
        ((("conversation_id", "c-3"),), None, ("c-3", False)),
        ((), b'{"model":"gpt","prompt_cache_key":"pck-4","input":[]}', ("pck-4", False)),
        ((), b'{"model":"gpt","input":[]}', None),
        ((), b"not json at all", None),
        ((), None, None),
    ],
)
def test_conversation_key_order(
    headers: tuple[tuple[str, str], ...], body: bytes | None, expected: tuple[str, bool] | None
) -> None:
    """turn-state (hard), then session headers, then body prompt_cache_key; never raises."""
    key = CODEX.conversation_key(head("POST", "/v1/responses", *headers), body)
    assert ((key.value, key.hard) if key else None) == expected


def test_conversation_key_in_zstd_body() -> None:
    """A zstd-compressed body (built-in provider) still yields prompt_cache_key."""
    body = zstandard.ZstdCompressor().compress(b'{"prompt_cache_key":"pck-z"}')
    key = CODEX.conversation_key(head("POST", "/v1/responses", ("content-encoding", "zstd")), body)
    assert key is not None
    assert key.value == "pck-z"
    garbage = CODEX.conversation_key(
        head("POST", "/v1/responses", ("content-encoding", "zstd")), b"junk"
    )
    assert garbage is None


def test_decode_body_limits_and_errors() -> None:
    """Oversized or corrupt zstd bodies raise our own error."""
    zstd_head = head("POST", "/v1/responses", ("content-encoding", "zstd"))
    body = zstandard.ZstdCompressor().compress(b"x" * 1000)
    assert decode_body(zstd_head, body) == b"x" * 1000
    with pytest.raises(BodyDecodeError):
        decode_body(zstd_head, body, max_bytes=999)
    with pytest.raises(BodyDecodeError):
        decode_body(zstd_head, b"\x28\xb5\x2f\xfd garbage")
    with pytest.raises(BodyDecodeError):
        decode_body(head("POST", "/", ("content-encoding", "br")), b"")


def test_prepare_replaces_client_credentials() -> None:
    """The client's credential headers go, the account's come, the rest and the body stay."""
    body = b'{"model": "gpt",  "input": []}'
    client = head(
        "POST",
        "/v1/responses",
        ("authorization", "Bearer client-token"),
        ("chatgpt-account-id", "client-acct"),
        ("cookie", "cf=1"),
        ("host", "127.0.0.1:8989"),
        ("content-length", "31"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("session-id", "s-1"),
        ("x-unknown-header", "kept"),
    )
    route = Route("codex", RouteKind.PROXY, "https://chatgpt.com/backend-api/codex/responses")
    prepared = CODEX.prepare(route, client, body, credentials())
    assert prepared.body is body
    assert prepared.url == route.upstream_url
    assert prepared.headers == (
        ("session-id", "s-1"),
        ("x-unknown-header", "kept"),
        ("authorization", "Bearer ACCESS-of-the-account"),
        ("chatgpt-account-id", "acct-pool-1"),
    )


QUOTA_HEADERS = (
    ("x-codex-primary-used-percent", "42.5"),
    ("x-codex-primary-window-minutes", "300"),
    ("x-codex-primary-reset-at", str(int(NOW) + 600)),
    ("x-codex-secondary-used-percent", "10"),
    ("x-codex-secondary-window-minutes", "10080"),
    ("x-codex-secondary-reset-after-seconds", "3600"),
    ("x-codex-plan-type", "pro"),
)


def test_read_quota_headers() -> None:
    """Both windows are named by length, normalised to 0..1, and the plan is read."""
    reading = CODEX.read_quota(QUOTA_HEADERS, NOW)
    assert reading is not None
    assert reading.plan == "pro"
    assert not reading.exhausted
    (five, weekly) = reading.windows
    assert (five.name, five.used, five.window_s, five.resets_at) == ("5h", 0.425, 18000, NOW + 600)
    assert (weekly.name, weekly.used, weekly.resets_at) == ("weekly", 0.1, NOW + 3600)
    assert CODEX.read_quota((("content-type", "text/plain"),), NOW) is None


def test_classify_usage_limit_reached() -> None:
    """A 429 usage_limit_reached is QUOTA until the resets_at the body gave."""
    body = json.dumps(
        {
            "error": {
                "type": "usage_limit_reached",
                "message": "The usage limit has been reached",
                "plan_type": "pro",
                "resets_at": int(NOW) + 900,
            }
        }
    ).encode()
    outcome = CODEX.classify(429, QUOTA_HEADERS, body, NOW)
    assert (outcome.kind, outcome.retry_at, outcome.status) == (OutcomeKind.QUOTA, NOW + 900, 429)
    assert "usage_limit_reached" in outcome.reason
    older = json.dumps(
        {"error": {"type": "usage_limit_reached", "resets_in_seconds": 120}}
    ).encode()
    assert CODEX.classify(429, (), older, NOW).retry_at == NOW + 120


def test_classify_table() -> None:
    """Each status row of design.md §3.2 for Codex."""
    full = (("x-codex-primary-used-percent", "100"), ("x-codex-primary-reset-at", str(NOW + 50)))
    not_included = b'{"error":{"type":"usage_not_included","message":"no codex"}}'
    cases = [
        (200, (), b"", OutcomeKind.OK, None),
        (429, full, b"{}", OutcomeKind.QUOTA, NOW + 50),
        (429, (), not_included, OutcomeKind.ACCOUNT_ACTION, None),
        (
            429,
            (("retry-after", "3"),),
            b'{"error":{"type":"rate_limit"}}',
            OutcomeKind.THROTTLED,
            NOW + 3,
        ),
        (401, (), b"", OutcomeKind.AUTH, None),
        (403, (), b'{"detail":"Forbidden"}', OutcomeKind.FORBIDDEN, None),
        (403, (("content-type", "text/html"),), b"<html>", OutcomeKind.TRANSIENT, None),
        (403, (("cf-mitigated", "challenge"),), b"<html>", OutcomeKind.TRANSIENT, None),
        (402, (), b'{"detail":{"code":"deactivated_workspace"}}', OutcomeKind.FORBIDDEN, None),
        (402, (), b'{"detail":{"code":"payment_required"}}', OutcomeKind.CLIENT_ERROR, None),
        (
            400,
            (),
            b'{"detail":"The \'gpt-5.3-codex-spark\' model is not supported when using Codex'
            b' with a ChatGPT account."}',
            OutcomeKind.WRONG_PLAN,
            None,
        ),
        (500, (), b"", OutcomeKind.TRANSIENT, None),
        (503, (), b'{"error":{"code":"server_is_overloaded"}}', OutcomeKind.TRANSIENT, None),
        (408, (), b"", OutcomeKind.TRANSIENT, None),
        (400, (), b'{"error":{"code":"cyber_policy"}}', OutcomeKind.CLIENT_ERROR, None),
        (404, (), b"", OutcomeKind.CLIENT_ERROR, None),
    ]
    for status, headers, body, kind, retry_at in cases:
        outcome = CODEX.classify(status, headers, body, NOW)
        assert (outcome.kind, outcome.retry_at) == (kind, retry_at), status


def test_observer_every_split_same_usage() -> None:
    """The example stream gives the same usage and completion whatever the split."""
    for i in range(len(CODEX_STREAM) + 1):
        observer = CODEX.observer(head("POST", "/v1/responses"), SSE_HEADERS, NOW)
        usage, complete, _ = run_observer(observer, [CODEX_STREAM[:i], CODEX_STREAM[i:]])
        assert (usage, complete) == (CODEX_USAGE, True), i


def test_observer_in_band_failure() -> None:
    """response.failed becomes a failure outcome, never a completion."""
    event = {
        "type": "response.failed",
        "response": {
            "id": "r",
            "status": "failed",
            "error": {
                "code": "rate_limit_exceeded",
                "message": "Rate limit reached. Please try again in 1.5s.",
            },
        },
    }
    stream = b"event: response.failed\ndata: " + json.dumps(event).encode() + b"\n\n"
    _, complete, events = run_observer(
        CODEX.observer(head("POST", "/v1/responses"), SSE_HEADERS, NOW), [stream]
    )
    assert not complete
    failure = events[0].failure
    assert failure is not None
    assert failure.kind is OutcomeKind.THROTTLED
    assert failure.retry_at == NOW + 1.5


def test_observer_json_body_and_compressed_body() -> None:
    """A JSON body's usage is read at finish; a compressed body is not observed."""
    body = b'{"output":[],"usage":{"input_tokens":3,"output_tokens":2}}'
    observer = CODEX.observer(head("POST", "/v1/responses/compact"), JSON_HEADERS, NOW)
    usage, _, _ = run_observer(observer, [body[:5], body[5:]])
    assert usage is not None
    assert (usage.input, usage.output) == (3, 2)
    gzip_headers = (*SSE_HEADERS, ("content-encoding", "gzip"))
    observer = CODEX.observer(head("POST", "/v1/responses"), gzip_headers, NOW)
    assert run_observer(observer, [CODEX_STREAM]) == (None, False, [])


def test_error_shapes() -> None:
    """OpenAI error JSON and a response.failed SSE event the SDK can parse."""
    headers, body = CODEX.error_response(
        429, "every account is cooling", kind="usage_limit_reached"
    )
    assert headers == [("content-type", "application/json")]
    assert json.loads(body) == {
        "error": {
            "message": "every account is cooling",
            "type": "usage_limit_reached",
            "code": "usage_limit_reached",
        }
    }
    raw = CODEX.stream_error_event("upstream broke", kind="upstream_error")
    assert raw.endswith(b"\n\n")
    (event,) = SseParser().feed(raw)
    payload = json.loads(event.data)
    assert event.event == payload["type"] == "response.failed"
    assert payload["response"]["error"] == {"code": "upstream_error", "message": "upstream broke"}


def auth_document() -> dict[str, object]:
    id_token = make_jwt(
        {
            "email": "a@example.com",
            "exp": NOW + 100,
            "https://api.openai.com/auth": {
                "chatgpt_plan_type": "plus",
                "chatgpt_account_id": "acct-claim",
            },
        }
    )
    return {
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": None,
        "tokens": {
            "id_token": id_token,
            "access_token": make_jwt({"exp": NOW + 3600}),
            "refresh_token": "rt_OLD",
            "account_id": "acct-1",
            "extra": 1,
        },
        "last_refresh": "2026-01-01T00:00:00Z",
        "unknown_top": {"kept": True},
    }


def test_parse_credentials() -> None:
    """auth.json gives the access token, account id, email, plan and the access JWT's exp."""
    creds = CODEX.parse_credentials(auth_document())
    assert (creds.account_id, creds.email, creds.plan, creds.expires_at) == (
        "acct-1",
        "a@example.com",
        "plus",
        NOW + 3600,
    )
    assert creds.refresh_token == "rt_OLD"


def test_parse_credentials_missing_fields_named() -> None:
    """A missing field is named; an API-key login is refused with a hint."""
    with pytest.raises(CredentialsError, match=r"tokens\.access_token"):
        CODEX.parse_credentials({"tokens": {"refresh_token": "x"}})
    with pytest.raises(CredentialsError, match="tokens"):
        CODEX.parse_credentials({"OPENAI_API_KEY": "sk-x"})


def test_refresh_request_and_merge() -> None:
    """The refresh body is Codex's; a success merges tokens and keeps unknown fields."""
    document = auth_document()
    request = CODEX.refresh_request(
        CODEX.parse_credentials(document), "https://auth.example/oauth/token"
    )
    assert json.loads(request.body) == {
        "client_id": "app_EMoamEEZ73f0CkXaXp7hrann",
        "grant_type": "refresh_token",
        "refresh_token": "rt_OLD",
    }
    answer = json.dumps(
        {"access_token": "NEW-ACCESS", "refresh_token": "rt_NEW", "id_token": "NEW-ID"}
    ).encode()
    result = CODEX.refresh_result(200, answer, document, NOW)
    assert result.verdict is RefreshVerdict.OK
    assert result.document is not None
    tokens = result.document["tokens"]
    assert (
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        tokens["account_id"],
        tokens["extra"],
    ) == ("NEW-ACCESS", "rt_NEW", "NEW-ID", "acct-1", 1)
    assert result.document["unknown_top"] == {"kept": True}
    assert result.document["last_refresh"] == "2027-01-15T08:00:00Z"
    assert document["tokens"]["refresh_token"] == "rt_OLD"  # type: ignore[index]


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (
            401,
            b'{"error":{"message":"Your refresh token has already been used","type":"invalid_request_error","code":"refresh_token_reused"}}',
            RefreshVerdict.PERMANENT,
        ),
        (400, b'{"error":"invalid_grant"}', RefreshVerdict.PERMANENT),
        (401, b"", RefreshVerdict.PERMANENT),
        (500, b"oops", RefreshVerdict.TRANSIENT),
        (429, b"{}", RefreshVerdict.TRANSIENT),
        (200, b"not json", RefreshVerdict.TRANSIENT),
    ],
)
def test_refresh_failures(status: int, body: bytes, verdict: RefreshVerdict) -> None:
    """Reused/expired tokens and any 401 are permanent; 5xx, 429 and garbage are transient."""
    assert CODEX.refresh_result(status, body, auth_document(), NOW).verdict is verdict


def test_usage_poll() -> None:
    """wham/usage is asked with the account's headers and read into windows."""
    request = CODEX.usage_request(credentials(), UPSTREAMS)
    assert request is not None
    assert request.url == "https://chatgpt.com/backend-api/wham/usage"
    assert ("chatgpt-account-id", "acct-pool-1") in request.headers
    body = json.dumps(
        {
            "plan_type": "plus",
            "rate_limit": {
                "allowed": False,
                "limit_reached": True,
                "primary_window": {
                    "used_percent": 100,
                    "limit_window_seconds": 18000,
                    "reset_at": NOW + 60,
                },
                "secondary_window": {
                    "used_percent": 30,
                    "limit_window_seconds": 604800,
                    "reset_after_seconds": 9,
                },
            },
        }
    ).encode()
    reading = CODEX.parse_usage(200, body, NOW)
    assert reading is not None
    assert reading.exhausted
    assert reading.resets_at == NOW + 60
    assert [(w.name, w.used) for w in reading.windows] == [("5h", 1.0), ("weekly", 0.3)]
    assert CODEX.parse_usage(500, body, NOW) is None


def test_usage_not_included_is_for_the_owner_to_fix() -> None:
    """usage_not_included (a 429 or in the stream) is needs_action no_codex_plan, not quota."""
    body = b'{"error":{"type":"usage_not_included","message":"Upgrade to use Codex."}}'
    outcome = CODEX.classify(429, (), body, NOW)
    assert outcome.kind is OutcomeKind.ACCOUNT_ACTION
    assert outcome.action is not None
    assert outcome.action.kind == "no_codex_plan"
    assert outcome.action.message == "plan has no Codex: Upgrade to use Codex."
    inband = inband_failure({"code": "usage_not_included", "message": "no"}, NOW)
    assert inband.kind is OutcomeKind.ACCOUNT_ACTION
