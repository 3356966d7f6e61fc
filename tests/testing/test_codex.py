"""The simulated Codex backend against a plain HTTP client."""

from __future__ import annotations

import json

import pytest
import trio
import zstandard

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, codex_headers, header, json_body, sse_events
from trio_pool.errors import UpstreamProtocolError
from trio_pool.providers import identity
from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.faults import SimConfig

CODEX_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
BODY = {
    "model": "gpt-5",
    "instructions": "Be brief.",
    "input": [{"type": "message", "role": "user", "content": []}],
    "store": False,
    "stream": True,
}


def url(sim: Sim, path: str = "/responses") -> str:
    return f"{sim.base}/backend-api/codex{path}"


async def test_stream_has_every_required_event_in_order(sim: Sim, http: HttpClient) -> None:
    """A turn streams created … completed, each data line valid JSON with a matching type."""
    account = sim.account("codex")
    with trio.fail_after(10):
        response = await call(http, "POST", url(sim), codex_headers(account), BODY)
    assert response.status == 200
    assert header(response, "content-type") == "text/event-stream"
    events = sse_events(response.content)
    assert [name for name, _ in events] == CODEX_EVENTS
    assert all(data["type"] == name for name, data in events)
    text = "".join(data["delta"] for name, data in events if name == "response.output_text.delta")
    done = events[-2][1]["item"]
    assert done["content"][0]["text"] == text == SimConfig().text
    completed = events[-1][1]["response"]
    assert completed["id"] == events[0][1]["response"]["id"]
    assert completed["usage"]["output_tokens"] > 0
    assert header(response, "x-codex-primary-used-percent") == "0.2"
    assert header(response, "x-codex-secondary-window-minutes") == "10080"
    assert header(response, "x-codex-plan-type") == "plus"
    assert account.requests == account.generations == 1
    assert account.last_header("chatgpt-account-id") == account.account_id


async def test_any_prefix_ending_in_responses_is_served(sim: Sim, http: HttpClient) -> None:
    """The custom-provider path /v1/responses is answered like /backend-api/codex/responses."""
    with trio.fail_after(10):
        response = await call(
            http, "POST", f"{sim.base}/v1/responses", codex_headers(sim.account("codex")), BODY
        )
    assert response.status == 200
    assert sse_events(response.content)[-1][0] == "response.completed"


async def test_full_window_gets_usage_limit_reached_until_reset(sim: Sim, http: HttpClient) -> None:
    """Filling the 5h window gives the real 429 body and headers; after the reset it passes again."""
    account = sim.account("codex")
    account.windows = [SimWindow("5h", 5 * 3600, 2), SimWindow("7d", 7 * 86400, 100)]
    with trio.fail_after(10):
        for _ in range(2):
            assert (await call(http, "POST", url(sim), codex_headers(account), BODY)).status == 200
        refused = await call(http, "POST", url(sim), codex_headers(account), BODY)
        assert refused.status == 429
        error = json_body(refused)["error"]
        assert error["type"] == "usage_limit_reached"
        assert error["resets_at"] == int(sim.clock.now + 5 * 3600)
        assert error["resets_in_seconds"] == 5 * 3600
        assert header(refused, "x-codex-primary-used-percent") == "100"
        assert header(refused, "x-codex-primary-reset-after-seconds") == str(5 * 3600)
        sim.clock.advance(5 * 3600 + 1)
        again = await call(http, "POST", url(sim), codex_headers(account), BODY)
    assert again.status == 200
    assert header(again, "x-codex-primary-used-percent") == "50"
    assert header(again, "x-codex-secondary-used-percent") == "3"


async def test_token_problems_get_401_and_wrong_account_403(sim: Sim, http: HttpClient) -> None:
    """Unknown and expired tokens get 401; a wrong ChatGPT-Account-ID gets 403 account_mismatch."""
    account = sim.account("codex")
    with trio.fail_after(10):
        unknown = await call(http, "POST", url(sim), [("authorization", "Bearer nope")], BODY)
        wrong = [*codex_headers(account)[:1], ("chatgpt-account-id", "acct-other")]
        mismatch = await call(http, "POST", url(sim), wrong, BODY)
        sim.clock.advance(account.expires_at - sim.clock.now)
        expired = await call(http, "POST", url(sim), codex_headers(account), BODY)
    assert unknown.status == 401
    assert sim.state.unknown_token_requests == 1
    assert mismatch.status == 403
    assert json_body(mismatch)["error"]["code"] == "account_mismatch"
    assert expired.status == 401
    assert json_body(expired)["error"]["code"] == "token_expired"


async def test_zstd_body_is_decoded(sim: Sim, http: HttpClient) -> None:
    """A Content-Encoding: zstd body (built-in provider Codex) is accepted and decoded."""
    account = sim.account("codex")
    plain = json.dumps(BODY).encode()
    # A streaming compressor writes frames without a content size, as Codex does.
    streaming = zstandard.ZstdCompressor().compressobj()
    compressed = streaming.compress(plain) + streaming.flush()
    headers = [*codex_headers(account), ("content-encoding", "zstd")]
    with trio.fail_after(10):
        response = await call(http, "POST", url(sim), headers, raw=compressed)
    assert response.status == 200
    assert account.last_body == plain


@pytest.mark.parametrize("mode", ["close", "error_event"])
async def test_mid_stream_faults(sim: Sim, http: HttpClient, mode: str) -> None:
    """After N events the stream is cut (broken chunked body) or ends with response.failed."""
    account = sim.account("codex")
    account.config = SimConfig(fail_after_events=5, fail_mode=mode)  # type: ignore[arg-type]
    with trio.fail_after(10):
        if mode == "close":
            with pytest.raises(UpstreamProtocolError):
                await call(http, "POST", url(sim), codex_headers(account), BODY)
            return
        response = await call(http, "POST", url(sim), codex_headers(account), BODY)
    events = sse_events(response.content)
    assert [name for name, _ in events] == [*CODEX_EVENTS[:5], "response.failed"]
    assert events[-1][1]["response"]["error"]["code"] == "server_error"


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("throttle", 429, "rate_limit_exceeded"),
        ("overloaded", 503, "server_is_overloaded"),
        ("server_error", 500, None),
        ("unauthorized", 401, "token_expired"),
    ],
)
async def test_forced_faults(
    sim: Sim, http: HttpClient, kind: str, status: int, code: str | None
) -> None:
    """A forced fault answers the next request only, in Codex's shape."""
    sim.state.force("codex/a", kind)  # type: ignore[arg-type]
    account = sim.account("codex")
    with trio.fail_after(10):
        faulted = await call(http, "POST", url(sim), codex_headers(account), BODY)
        after = await call(http, "POST", url(sim), codex_headers(account), BODY)
    assert faulted.status == status
    assert json_body(faulted)["error"]["code"] == code
    assert after.status == 200


async def test_forced_quota_fault_is_usage_limit_reached(sim: Sim, http: HttpClient) -> None:
    """A forced quota fault is the real usage_limit_reached 429, with resets_at."""
    sim.state.force("codex/a", "quota")
    with trio.fail_after(10):
        response = await call(http, "POST", url(sim), codex_headers(sim.account("codex")), BODY)
    assert response.status == 429
    assert json_body(response)["error"]["type"] == "usage_limit_reached"


async def test_side_endpoints(sim: Sim, http: HttpClient) -> None:
    """compact, models (with ETag), wham/usage and a 404 for unknown paths."""
    account = sim.account("codex")
    headers = codex_headers(account)
    with trio.fail_after(10):
        compact = await call(http, "POST", url(sim, "/responses/compact"), headers, {"input": []})
        models = await call(http, "GET", url(sim, "/models?client_version=0.169.0"), headers)
        usage = await call(
            http,
            "GET",
            f"{sim.base}/backend-api/wham/usage",
            [*headers, *identity.codex_headers()],
        )
        missing = await call(http, "GET", f"{sim.base}/backend-api/ps/plugins/installed", headers)
        upgrade = [*headers, ("connection", "Upgrade"), ("upgrade", "websocket")]
        ws = await call(http, "GET", url(sim), upgrade)
    assert compact.status == 200
    assert json_body(compact)["output"][0]["type"] == "message"
    assert json_body(models) == {"models": []}
    assert header(models, "etag")
    poll = json_body(usage)
    assert poll["plan_type"] == "plus"
    assert poll["rate_limit"]["primary_window"]["limit_window_seconds"] == 5 * 3600
    assert poll["rate_limit"]["allowed"] is True
    assert missing.status == 404
    assert ws.status == 426


async def test_slow_stream_with_delays(sim: Sim, http: HttpClient) -> None:
    """Delays between events and before the first byte still give the complete event sequence."""
    account = sim.account("codex")
    account.config = SimConfig(
        deltas=5, delta_bytes=7, event_delay_s=0.001, first_byte_delay_s=0.001
    )
    with trio.fail_after(10):
        response = await call(http, "POST", url(sim), codex_headers(account), BODY)
    events = sse_events(response.content)
    deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
    assert len(deltas) == 5
    assert all(len(d) == 7 for d in deltas)
    assert events[-1][0] == "response.completed"
