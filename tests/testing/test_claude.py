"""The simulated Anthropic Messages API against a plain HTTP client."""

from __future__ import annotations

import pytest
import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, claude_headers, header, json_body, sse_events
from trio_pool.providers import identity
from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.faults import SimConfig

CLAUDE_EVENTS = [
    "message_start",
    "content_block_start",
    "ping",
    "content_block_delta",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]
BODY = {
    "model": "claude-opus-5-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
UNIFIED = "anthropic-ratelimit-unified-"


def url(sim: Sim) -> str:
    return f"{sim.base}/v1/messages?beta=true"


async def test_stream_has_every_required_event_in_order(sim: Sim, http: HttpClient) -> None:
    """message_start … message_stop, each event line matching its data type, with unified headers."""
    account = sim.account("claude")
    with trio.fail_after(10):
        response = await call(
            http, "POST", url(sim), claude_headers(account), {**BODY, "stream": True}
        )
    assert response.status == 200
    events = sse_events(response.content)
    assert [name for name, _ in events] == CLAUDE_EVENTS
    assert all(data["type"] == name for name, data in events)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == SimConfig().text
    assert events[0][1]["message"]["model"] == "claude-opus-5-5"
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    assert events[7][1]["delta"]["stop_reason"] == "end_turn"
    assert events[7][1]["usage"]["output_tokens"] > 0
    assert header(response, UNIFIED + "status") == "allowed"
    assert header(response, UNIFIED + "5h-utilization") == "0.002"
    assert header(response, UNIFIED + "representative-claim") == "five_hour"
    assert header(response, "request-id")


async def test_non_streaming_reply_is_one_message(sim: Sim, http: HttpClient) -> None:
    """stream absent -> one JSON message with end_turn and usage."""
    with trio.fail_after(10):
        response = await call(http, "POST", url(sim), claude_headers(sim.account("claude")), BODY)
    message = json_body(response)
    assert message["type"] == "message"
    assert message["content"] == [{"type": "text", "text": SimConfig().text}]
    assert message["stop_reason"] == "end_turn"


async def test_auth_rules(sim: Sim, http: HttpClient) -> None:
    """OAuth needs the beta; unknown, x-api-key and expired tokens get the real 401 bodies."""
    account = sim.account("claude")
    with trio.fail_after(10):
        no_beta = await call(
            http, "POST", url(sim), claude_headers(account, beta="other-beta"), BODY
        )
        api_key = await call(http, "POST", url(sim), [("x-api-key", account.access_token)], BODY)
        unknown = await call(
            http, "POST", url(sim), [("authorization", "Bearer sk-ant-oat01-x")], BODY
        )
        sim.clock.advance(account.expires_at - sim.clock.now + 1)
        expired = await call(http, "POST", url(sim), claude_headers(account), BODY)
    assert no_beta.status == api_key.status == unknown.status == expired.status == 401
    assert (
        json_body(no_beta)["error"]["message"] == "OAuth authentication is currently not supported."
    )
    assert json_body(api_key)["error"]["type"] == "authentication_error"
    body = json_body(expired)
    assert body["type"] == "error"
    assert body["error"] == {
        "type": "authentication_error",
        "message": "OAuth token has expired. Please obtain a new token or refresh your existing token.",
    }
    assert body["request_id"].startswith("req_")


async def test_full_window_is_rejected_until_reset(sim: Sim, http: HttpClient) -> None:
    """A full 5h window gives 429 rate_limit_error with unified-status rejected; the reset clears it."""
    account = sim.account("claude")
    account.windows = [SimWindow("5h", 5 * 3600, 2), SimWindow("7d", 7 * 86400, 100)]
    with trio.fail_after(10):
        first = await call(http, "POST", url(sim), claude_headers(account), BODY)
        filling = await call(http, "POST", url(sim), claude_headers(account), BODY)
        refused = await call(http, "POST", url(sim), claude_headers(account), BODY)
        sim.clock.advance(5 * 3600)
        again = await call(http, "POST", url(sim), claude_headers(account), BODY)
    assert first.status == filling.status == 200
    assert header(filling, UNIFIED + "status") == "allowed_warning"
    assert refused.status == 429
    assert json_body(refused)["error"]["type"] == "rate_limit_error"
    assert header(refused, UNIFIED + "status") == "rejected"
    assert header(refused, UNIFIED + "5h-utilization") == "1"
    assert header(refused, UNIFIED + "reset") == str(int(sim.clock.now))
    assert header(refused, UNIFIED + "representative-claim") == "five_hour"
    assert again.status == 200
    assert header(again, UNIFIED + "status") == "allowed"


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [
        ("throttle", 429, "rate_limit_error"),
        ("overloaded", 529, "overloaded_error"),
        ("server_error", 500, "api_error"),
    ],
)
async def test_request_scoped_faults_have_no_unified_headers(
    sim: Sim, http: HttpClient, kind: str, status: int, error_type: str
) -> None:
    """Throttle 429 / 529 / 500 carry no unified headers, so they do not look like quota."""
    sim.state.force("claude/a", kind)  # type: ignore[arg-type]
    with trio.fail_after(10):
        response = await call(http, "POST", url(sim), claude_headers(sim.account("claude")), BODY)
    assert response.status == status
    assert json_body(response)["error"]["type"] == error_type
    assert not any(k.decode().startswith(UNIFIED) for k, _ in response.headers)
    if kind != "server_error":
        assert header(response, "x-should-retry") == "true"


async def test_in_stream_error_event(sim: Sim, http: HttpClient) -> None:
    """The error_event fault ends the stream with event: error overloaded_error."""
    account = sim.account("claude")
    account.config = SimConfig(fail_after_events=4, fail_mode="error_event")
    with trio.fail_after(10):
        response = await call(
            http, "POST", url(sim), claude_headers(account), {**BODY, "stream": True}
        )
    events = sse_events(response.content)
    assert [n for n, _ in events] == [*CLAUDE_EVENTS[:4], "error"]
    assert events[-1][1]["error"]["type"] == "overloaded_error"


async def test_count_tokens_and_usage_poll(sim: Sim, http: HttpClient) -> None:
    """count_tokens answers input_tokens; /api/oauth/usage reports percent and ISO resets."""
    account = sim.account("claude")
    usage_headers = [*claude_headers(account), ("user-agent", identity.claude_code_user_agent())]
    with trio.fail_after(10):
        await call(http, "POST", url(sim), claude_headers(account), BODY)
        count = await call(
            http, "POST", f"{sim.base}/v1/messages/count_tokens", claude_headers(account), BODY
        )
        usage = await call(http, "GET", f"{sim.base}/api/oauth/usage", usage_headers)
    assert json_body(count)["input_tokens"] > 0
    poll = json_body(usage)
    assert poll["five_hour"]["utilization"] == 0.2
    assert poll["seven_day"]["resets_at"].endswith("+00:00")
    assert poll["seven_day_opus"] is None
