"""Model-scoped quota: which windows and 429s stop one model, and which stop the account."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from tests.providers.samples import NOW
from trio_pool.providers.base import REQUEST_MODEL, OutcomeKind, scope_matches
from trio_pool.providers.claude import ClaudeProvider
from trio_pool.providers.codex import CodexProvider, rate_limits_event
from trio_pool.providers.codex_limits import family_names
from trio_pool.providers.gemini import GeminiProvider, next_daily_reset

CODEX, CLAUDE, GEMINI = CodexProvider(), ClaudeProvider(), GeminiProvider()
DOMAIN = "cloudcode-pa.googleapis.com"


def test_scopes_match_exact_ids_or_family_words() -> None:
    """An exact id never matches a longer id; a family word matches any model of it."""
    assert scope_matches("gemini-2.5-flash", "gemini-2.5-flash")
    assert scope_matches("gemini-2.5-flash", "models/Gemini-2.5-Flash")
    assert not scope_matches("gemini-2.5-flash", "gemini-2.5-flash-lite")
    assert scope_matches("opus", "claude-opus-4-1-20250805")
    assert not scope_matches("opus", "claude-sonnet-4-5")
    assert not scope_matches("opus", None)


def test_claude_usage_poll_scopes_the_opus_and_sonnet_weeks() -> None:
    """seven_day_opus/sonnet and limits[] weekly_scoped rows are model windows; a full Opus
    week does not say the account is out."""
    reset = "2026-09-30T00:00:00+00:00"
    body = {
        "five_hour": {"utilization": 10, "resets_at": reset},
        "seven_day": {"utilization": 40, "resets_at": reset},
        "seven_day_opus": {"utilization": 100, "resets_at": reset},
        "limits": [
            {"kind": "weekly_all", "percent": 40, "resets_at": reset},
            {
                "kind": "weekly_scoped",
                "percent": 55,
                "resets_at": reset,
                "scope": {"model": {"display_name": "Sonnet 4.5"}},
                "is_active": True,
            },
        ],
    }
    reading = CLAUDE.parse_usage(200, json.dumps(body).encode(), NOW)
    assert reading is not None
    scopes = {w.name: (w.scope, w.used) for w in reading.windows}
    assert scopes == {
        "5h": (None, 0.1),
        "7d": (None, 0.4),
        "7d_opus": ("opus", 1.0),
        "7d_sonnet": ("sonnet", 0.55),
    }
    assert not reading.exhausted


def test_claude_rejection_by_the_opus_week_cools_opus_only() -> None:
    """A 429 whose representative claim is seven_day_opus is a QUOTA scoped to opus."""
    prefix = "anthropic-ratelimit-unified-"
    headers = (
        (prefix + "status", "rejected"),
        (prefix + "reset", str(int(NOW + 86400))),
        (prefix + "representative-claim", "seven_day_opus"),
        (prefix + "5h-utilization", "0.2"),
        (prefix + "7d-utilization", "0.5"),
    )
    body = b'{"type":"error","error":{"type":"rate_limit_error","message":"limit"}}'
    outcome = CLAUDE.classify(429, headers, body, NOW)
    assert (outcome.kind, outcome.scope, outcome.retry_at) == (
        OutcomeKind.QUOTA,
        "opus",
        NOW + 86400,
    )
    assert outcome.quota is not None
    assert not outcome.quota.exhausted
    plain = CLAUDE.classify(429, headers[:1] + headers[3:], body, NOW)
    assert plain.kind is OutcomeKind.QUOTA
    assert plain.scope is None


def test_codex_extra_families_never_overwrite_the_main_windows() -> None:
    """x-codex-bengalfox-* becomes windows of its model, beside the main 5h/weekly."""
    headers = (
        ("x-codex-primary-used-percent", "20"),
        ("x-codex-primary-window-minutes", "300"),
        ("x-codex-secondary-used-percent", "30"),
        ("x-codex-secondary-window-minutes", "10080"),
        ("x-codex-bengalfox-primary-used-percent", "100"),
        ("x-codex-bengalfox-primary-window-minutes", "300"),
        ("x-codex-bengalfox-limit-name", "gpt-5.4-codex-sonic"),
    )
    reading = CODEX.read_quota(headers, NOW)
    assert reading is not None
    assert {(w.name, w.scope, w.used) for w in reading.windows} == {
        ("5h", None, 0.2),
        ("weekly", None, 0.3),
        ("gpt-5.4-codex-sonic 5h", "gpt-5.4-codex-sonic", 1.0),
    }
    assert not reading.exhausted


def test_codex_websocket_family_event_and_usage_extras_are_scoped() -> None:
    """A codex.rate_limits event with metered_limit_name, and wham/usage's
    additional_rate_limits, give model windows only."""
    event = {
        "type": "codex.rate_limits",
        "metered_limit_name": "gpt-5.4-codex-sonic",
        "rate_limits": {"primary": {"used_percent": 90, "window_minutes": 300}},
    }
    reading = rate_limits_event(event, NOW)
    assert reading is not None
    assert [(w.name, w.scope) for w in reading.windows] == [
        ("gpt-5.4-codex-sonic 5h", "gpt-5.4-codex-sonic")
    ]
    usage = {
        "plan_type": "pro",
        "rate_limit": {"primary_window": {"used_percent": 5, "limit_window_seconds": 18000}},
        "additional_rate_limits": [
            {
                "limit_name": "gpt-5.4-codex-sonic",
                "metered_feature": "codex_bengalfox",
                "rate_limit": {
                    "primary_window": {"used_percent": 100, "limit_window_seconds": 18000}
                },
            }
        ],
    }
    polled = CODEX.parse_usage(200, json.dumps(usage).encode(), NOW)
    assert polled is not None
    assert not polled.exhausted
    assert {w.scope for w in polled.windows} == {None, "gpt-5.4-codex-sonic"}


def test_codex_429_of_an_extra_family_cools_its_model() -> None:
    """usage_limit_reached with x-codex-active-limit naming an extra family of the head is
    model-scoped (the family's limit name, else the request's model); a value that names no
    family of the head ("premium", "codex", a bare id) is the account's own limit."""
    body = json.dumps(
        {"error": {"type": "usage_limit_reached", "resets_at": int(NOW + 600)}}
    ).encode()
    named = (
        ("x-codex-active-limit", "codex_bengalfox"),
        ("x-codex-bengalfox-limit-name", "gpt-5.4-codex-sonic"),
    )
    outcome = CODEX.classify(429, named, body, NOW)
    assert (outcome.kind, outcome.scope, outcome.retry_at) == (
        OutcomeKind.QUOTA,
        "gpt-5.4-codex-sonic",
        NOW + 600,
    )
    nameless = (named[0], ("x-codex-bengalfox-primary-used-percent", "100"))
    assert CODEX.classify(429, nameless, body, NOW).scope == REQUEST_MODEL
    for active in ("premium", "codex", "codex_bengalfox"):
        own = (("x-codex-active-limit", active), ("x-codex-primary-used-percent", "100"))
        assert CODEX.classify(429, own, body, NOW).scope is None


def test_codex_main_headers_of_a_family_turn_are_the_familys_copy() -> None:
    """On a turn charged to an extra family x-codex-primary-* repeats that family's numbers
    (live capture): only the family's windows are read, the account's stay as they were."""
    headers = (
        ("x-codex-active-limit", "codex_bengalfox"),
        ("x-codex-bengalfox-limit-name", "GPT-5.3-Codex-Spark"),
        ("x-codex-bengalfox-primary-used-percent", "100"),
        ("x-codex-bengalfox-primary-window-minutes", "300"),
        ("x-codex-primary-used-percent", "100"),
        ("x-codex-primary-window-minutes", "300"),
    )
    reading = CODEX.read_quota(headers, NOW)
    assert reading is not None
    assert [(w.name, w.scope) for w in reading.windows] == [
        ("GPT-5.3-Codex-Spark 5h", "GPT-5.3-Codex-Spark")
    ]
    assert scope_matches("GPT-5.3-Codex-Spark", "gpt-5.3-codex-spark")
    main_turn = (("x-codex-active-limit", "premium"), *headers[1:])
    names = {w.name for w in (CODEX.read_quota(main_turn, NOW) or reading).windows}
    assert names == {"5h", "GPT-5.3-Codex-Spark 5h"}


def test_codex_websocket_family_event_takes_its_name_from_the_handshake() -> None:
    """A codex.rate_limits event names its family by id only: the limit name the response
    head gave turns it into the model's windows."""
    event = {
        "type": "codex.rate_limits",
        "metered_limit_name": "codex_bengalfox",
        "rate_limits": {"primary": {"used_percent": 40, "window_minutes": 300}},
    }
    names = family_names({"x-codex-bengalfox-limit-name": "GPT-5.3-Codex-Spark"})
    reading = rate_limits_event(event, NOW, names)
    assert reading is not None
    assert [(w.name, w.scope, w.used) for w in reading.windows] == [
        ("GPT-5.3-Codex-Spark 5h", "GPT-5.3-Codex-Spark", 0.4)
    ]


def _google_error(code: int, message: str, details: list[object]) -> bytes:
    status = {403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}[code]
    return json.dumps(
        {"error": {"code": code, "message": message, "status": status, "details": details}}
    ).encode()


def test_gemini_quota_429_cools_the_named_model() -> None:
    """A RATE_LIMIT_EXCEEDED 429 with a delay cools the model its ErrorInfo names."""
    body = _google_error(
        429,
        "You have exhausted your capacity on this model.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RATE_LIMIT_EXCEEDED",
                "domain": DOMAIN,
                "metadata": {"model": "gemini-2.5-pro", "quotaResetDelay": "56s"},
            }
        ],
    )
    outcome = GEMINI.classify(429, (), body, NOW)
    assert (outcome.kind, outcome.scope, outcome.retry_at) == (
        OutcomeKind.QUOTA,
        "gemini-2.5-pro",
        NOW + 56,
    )


def test_gemini_daily_quota_and_limit_zero_wait_for_the_daily_reset() -> None:
    """QuotaFailure PerDay and "limit: 0" are terminal for the model until midnight PT."""
    daily = _google_error(
        429,
        "Quota exceeded.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel"}],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"},
        ],
    )
    zero = _google_error(429, "Quota exceeded for metric: x, limit: 0, model: y", [])
    reset = next_daily_reset(NOW)
    for body in (daily, zero):
        outcome = GEMINI.classify(429, (), body, NOW)
        assert (outcome.kind, outcome.scope, outcome.retry_at) == (
            OutcomeKind.QUOTA,
            REQUEST_MODEL,
            reset,
        )
    pacific = datetime.fromtimestamp(reset, tz=UTC)
    assert pacific.minute == 0
    assert pacific.hour in (7, 8)
    assert 0 < reset - NOW <= 86400


def test_gemini_validation_required_asks_the_user_with_its_link() -> None:
    """403 VALIDATION_REQUIRED (cloudcode-pa) is an account action carrying the Help link."""
    body = _google_error(
        403,
        "Verify your account to continue.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "VALIDATION_REQUIRED",
                "domain": DOMAIN,
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Verify", "url": "https://accounts.google.com/v"}],
            },
        ],
    )
    outcome = GEMINI.classify(403, (), body, NOW)
    assert outcome.kind is OutcomeKind.ACCOUNT_ACTION
    assert outcome.action is not None
    assert (outcome.action.kind, outcome.action.link) == (
        "validation_required",
        "https://accounts.google.com/v",
    )
    other = _google_error(403, "denied", [])
    assert GEMINI.classify(403, (), other, NOW).kind is OutcomeKind.FORBIDDEN
