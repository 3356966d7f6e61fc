"""The simulated upstreams refuse what the real ones refuse, in the real ones' words."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, claude_headers, codex_headers, header, json_body
from tests.testing.test_websocket import auth, connect, turn, ws_url
from trio_pool.testing.claude_rules import CCH_PLACEHOLDER, cache_ttls, sign, xxh64

VALID = {
    "model": "gpt-5",
    "instructions": "",
    "input": [],
    "store": False,
    "stream": True,
}
BILLING = "x-anthropic-billing-header: cc_version=2.1.330.440; cc_entrypoint=cli; cch=00000;"


def responses_url(sim: Sim) -> str:
    return f"{sim.base}/backend-api/codex/responses"


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"instructions": None}, "Instructions are required"),
        ({"store": None}, "Store must be set to false"),
        ({"store": True}, "Store must be set to false"),
        ({"stream": False}, "Stream must be set to true"),
        ({"max_output_tokens": 512}, "Unsupported parameter: max_output_tokens"),
        ({"temperature": 0.2}, "Unsupported parameter: temperature"),
        ({"top_p": 0.9}, "Unsupported parameter: top_p"),
        (
            {"model": "gpt-5.3-codex-spark"},
            "The 'gpt-5.3-codex-spark' model is not supported when using Codex with a "
            "ChatGPT account.",
        ),
    ],
)
async def test_codex_backend_refuses_bodies_it_does_not_take(
    sim: Sim, http: HttpClient, change: dict[str, Any], detail: str
) -> None:
    """400 {"detail": ...} with the backend's text; the valid body is served."""
    body = {k: v for k, v in {**VALID, **change}.items() if v is not None}
    headers = codex_headers(sim.account("codex"))
    with trio.fail_after(10):
        refused = await call(http, "POST", responses_url(sim), headers, body)
        served = await call(http, "POST", responses_url(sim), headers, VALID)
    assert refused.status == 400
    assert json_body(refused) == {"detail": detail}
    assert served.status == 200


async def test_codex_responses_lite_needs_no_instructions(sim: Sim, http: HttpClient) -> None:
    """Codex 0.169's responses-lite turn (no top-level instructions, lite header) is served."""
    body = {k: v for k, v in VALID.items() if k != "instructions"}
    lite = [("x-openai-internal-codex-responses-lite", "true")]
    with trio.fail_after(10):
        served = await call(
            http, "POST", responses_url(sim), codex_headers(sim.account("codex")) + lite, body
        )
    assert served.status == 200


async def test_codex_plan_model_is_served_on_the_plan_that_has_it(
    sim: Sim, http: HttpClient
) -> None:
    """A Pro-only model works for a Pro account."""
    account = sim.account("codex")
    account.plan = "pro"
    body = {**VALID, "model": "gpt-5.3-codex-spark"}
    with trio.fail_after(10):
        served = await call(http, "POST", responses_url(sim), codex_headers(account), body)
    assert served.status == 200


async def test_codex_websocket_turn_without_store_false_gets_an_error_frame(sim: Sim) -> None:
    """Over the WebSocket the same refusal comes as a 400 error frame."""
    account = sim.account("codex")
    message = json.dumps({"type": "response.create", "model": "gpt-5", "instructions": ""})
    with trio.fail_after(10):
        async with connect(ws_url(sim), auth(account)) as ws:
            (error,) = await turn(ws, message)
    assert error["status"] == 400
    assert error["error"]["message"] == "Store must be set to false"


@pytest.mark.parametrize(
    ("provider", "fault"),
    [
        ("codex", "cloudflare"),
        ("claude", "cloudflare"),
        ("codex", "deactivated_workspace"),
        ("codex", "usage_not_included"),
        ("claude", "revoked"),
        ("claude", "org_disabled"),
    ],
)
async def test_account_errors_look_like_the_real_ones(
    sim: Sim, http: HttpClient, provider: str, fault: Any
) -> None:
    """Cloudflare HTML 403, Codex 402 and usage_not_included, Claude 403 revoked/disabled."""
    account = sim.account(provider)
    account.force(fault)
    if provider == "codex":
        response = await call(http, "POST", responses_url(sim), codex_headers(account), VALID)
    else:
        body = {"model": "claude-haiku-4-5", "max_tokens": 8, "messages": []}
        response = await call(
            http, "POST", f"{sim.base}/v1/messages", claude_headers(account), body
        )
    if fault == "cloudflare":
        assert response.status == 403
        assert (header(response, "content-type") or "").startswith("text/html")
        assert header(response, "cf-mitigated") == "challenge"
        return
    answer = json_body(response)
    if fault == "deactivated_workspace":
        assert (response.status, answer) == (402, {"detail": {"code": "deactivated_workspace"}})
    elif fault == "usage_not_included":
        assert (response.status, answer["error"]["type"]) == (429, "usage_not_included")
    else:
        assert (response.status, answer["error"]["type"]) == (403, "permission_error")
        expected = "revoked" if fault == "revoked" else "organization has been disabled"
        assert expected in answer["error"]["message"]


def test_xxh64_matches_the_reference_vectors() -> None:
    """The attestation hash is XXH64 (reference test vectors, short and long inputs)."""
    assert xxh64(b"") == 0xEF46DB3751D8E999
    assert xxh64(b"abc") == 0x44BC2CF5AD770999
    assert xxh64(b"Nobody inspects the spammish repetition") == 0xFBCEA83C8A378BF1


async def test_claude_checks_the_body_against_its_cch(sim: Sim, http: HttpClient) -> None:
    """A body signed as Claude Code signs it is served; the same body changed by one byte is
    refused, as the real API checks cch."""
    account = sim.account("claude")
    unsigned = json.dumps(
        {
            "model": "claude-opus-5-5",
            "max_tokens": 8,
            "system": [{"type": "text", "text": BILLING}],
            "messages": [{"role": "user", "content": "hi"}],
        }
    ).encode()
    signed = sign(unsigned)
    assert CCH_PLACEHOLDER not in signed
    tampered = signed.replace(b'"hi"', b'"ho"')
    url = f"{sim.base}/v1/messages"
    with trio.fail_after(10):
        served = await call(http, "POST", url, claude_headers(account), raw=signed)
        refused = await call(http, "POST", url, claude_headers(account), raw=tampered)
    assert served.status == 200
    assert refused.status == 400
    assert "cch" in json_body(refused)["error"]["message"]


@pytest.mark.parametrize(
    ("model", "system", "status", "billed"),
    [
        ("claude-opus-5-5", None, 400, 0),  # a third-party request, no extra usage to bill
        ("claude-opus-5-5", [{"type": "text", "text": BILLING}], 200, 0),  # Claude Code's
        ("claude-haiku-4-5", None, 200, 0),  # Haiku is let through
    ],
)
async def test_claude_third_party_requests_need_extra_usage(
    sim: Sim,
    http: HttpClient,
    model: str,
    system: Any,
    status: int,
    billed: int,
) -> None:
    """Without Claude Code's billing block, a non-Haiku subscription request is refused when the
    account has no extra usage (and billed to it when it has)."""
    account = sim.account("claude")
    account.extra_usage = False
    body: dict[str, Any] = {"model": model, "max_tokens": 8, "messages": []}
    if system is not None:
        body["system"] = system
    with trio.fail_after(10):
        response = await call(
            http, "POST", f"{sim.base}/v1/messages", claude_headers(account), body
        )
    assert response.status == status
    account.extra_usage = True
    with trio.fail_after(10):
        billed_response = await call(
            http, "POST", f"{sim.base}/v1/messages", claude_headers(account), body
        )
    assert billed_response.status == 200
    assert account.extra_usage_requests == (1 if status == 400 else billed)


def test_cache_ttls_lists_every_breakpoint() -> None:
    """The simulator's note on prompt caching: each breakpoint's TTL, 5m when none is given."""
    request = {
        "tools": [{"name": "t", "cache_control": {"type": "ephemeral"}}],
        "system": [
            {"type": "text", "text": "s", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
        ],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "m"}]}],
    }
    assert cache_ttls(request) == ["5m", "1h"]
