"""The simulated Gemini Code Assist API against a plain HTTP client."""

from __future__ import annotations

import json

import pytest
import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, gemini_headers, json_body, sse_events
from trio_pool.errors import UpstreamProtocolError
from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.faults import SimConfig
from trio_pool.testing.issue import new_account


def url(sim: Sim, method: str) -> str:
    return f"{sim.base}/v1internal:{method}"


def turn(sim: Sim, **extra: object) -> dict[str, object]:
    request = {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "session_id": "s1",
        **extra,
    }
    return {
        "model": "gemini-3-flash",
        "project": sim.account("gemini").project,
        "user_prompt_id": "s1",
        "request": request,
    }


async def test_startup_calls_name_the_accounts_project(sim: Sim, http: HttpClient) -> None:
    """A Standard account: loadCodeAssist names its project only when asked with it; quota,
    experiments and metrics answer; another operation than its own is not found."""
    account = sim.account("gemini")
    headers = gemini_headers(account)
    project = {"cloudaicompanionProject": account.project, "metadata": {}}
    with trio.fail_after(10):
        bare = json_body(
            await call(http, "POST", url(sim, "loadCodeAssist"), headers, {"metadata": {}})
        )
        load = json_body(await call(http, "POST", url(sim, "loadCodeAssist"), headers, project))
        quota = json_body(
            await call(
                http, "POST", url(sim, "retrieveUserQuota"), headers, {"project": account.project}
            )
        )
        experiments = json_body(
            await call(
                http, "POST", url(sim, "listExperiments"), headers, {"project": account.project}
            )
        )
        metrics = json_body(
            await call(http, "POST", url(sim, "recordCodeAssistMetrics"), headers, {})
        )
        count = json_body(
            await call(http, "POST", url(sim, "countTokens"), headers, {"request": {}})
        )
        other = await call(http, "GET", f"{sim.base}/v1internal/operations/x", headers)
    assert bare["currentTier"]["id"] == "standard-tier"
    assert "cloudaicompanionProject" not in bare  # the CLI: ProjectIdRequiredError
    assert load["cloudaicompanionProject"] == account.project
    assert quota["buckets"][0]["remainingFraction"] == 1
    assert experiments == metrics == {}
    assert count["totalTokens"] > 0
    assert other.status == 404


async def test_individual_accounts_are_refused_as_unsupported(sim: Sim, http: HttpClient) -> None:
    """A free-tier (individual) account: no currentTier, UNSUPPORTED_CLIENT with a
    reasonMessage, and its model calls are denied."""
    account = sim.account("gemini")
    account.plan = "free-tier"
    headers = gemini_headers(account)
    with trio.fail_after(10):
        load = json_body(
            await call(http, "POST", url(sim, "loadCodeAssist"), headers, {"metadata": {}})
        )
        turned = await call(
            http, "POST", url(sim, "streamGenerateContent?alt=sse"), headers, turn(sim)
        )
    assert "currentTier" not in load
    (tier,) = load["ineligibleTiers"]
    assert tier["reasonCode"] == "UNSUPPORTED_CLIENT"
    assert tier["reasonMessage"]
    assert turned.status == 403


async def test_onboarding_is_an_operation_only_its_account_can_poll(
    sim: Sim, http: HttpClient
) -> None:
    """Not onboarded: no currentTier; onboardUser needs the project and answers a running
    operation; another account's poll is 404; the account's own poll finishes it."""
    account = sim.account("gemini")
    other = new_account("gemini", "b", now=sim.clock.now)
    sim.state.add(other)
    account.onboarded = False
    headers = gemini_headers(account)
    onboard = {"tierId": "standard-tier", "metadata": {}}
    with trio.fail_after(10):
        load = json_body(
            await call(http, "POST", url(sim, "loadCodeAssist"), headers, {"metadata": {}})
        )
        refused = await call(http, "POST", url(sim, "onboardUser"), headers, onboard)
        started = json_body(
            await call(
                http,
                "POST",
                url(sim, "onboardUser"),
                headers,
                {**onboard, "cloudaicompanionProject": account.project},
            )
        )
        operation = f"{sim.base}/v1internal/{started['name']}"
        stranger = await call(http, "GET", operation, gemini_headers(other))
        done = json_body(await call(http, "GET", operation, headers))
    assert "currentTier" not in load
    assert load["allowedTiers"][0]["isDefault"] is True
    assert refused.status == 400
    assert started["done"] is False
    assert stranger.status == 404
    assert done["response"]["cloudaicompanionProject"]["id"] == account.project
    assert account.onboarded


async def test_validation_required_is_a_403_with_the_link(sim: Sim, http: HttpClient) -> None:
    """An account Google wants verified: 403 VALIDATION_REQUIRED (cloudcode-pa) + Help link."""
    account = sim.account("gemini")
    account.validation_url = "https://accounts.google.test/verify"
    with trio.fail_after(10):
        refused = await call(
            http,
            "POST",
            url(sim, "streamGenerateContent?alt=sse"),
            gemini_headers(account),
            turn(sim),
        )
    error = json_body(refused)["error"]
    assert refused.status == 403
    assert error["details"][0]["reason"] == "VALIDATION_REQUIRED"
    assert error["details"][1]["links"][0]["url"] == account.validation_url


async def test_a_model_bucket_at_zero_refuses_that_model_only(sim: Sim, http: HttpClient) -> None:
    """A spent per-model window: that model gets a 429 naming it, the others still answer,
    and retrieveUserQuota shows that bucket at 0."""
    account = sim.account("gemini")
    account.windows = [SimWindow("pro", 86400.0, 1, 1, model="gemini-2.5-pro")]
    headers = gemini_headers(account)
    target = url(sim, "streamGenerateContent?alt=sse")
    with trio.fail_after(10):
        pro = await call(http, "POST", target, headers, {**turn(sim), "model": "gemini-2.5-pro"})
        flash = await call(http, "POST", target, headers, turn(sim))
        quota = json_body(
            await call(
                http, "POST", url(sim, "retrieveUserQuota"), headers, {"project": account.project}
            )
        )
    assert pro.status == 429
    assert json_body(pro)["error"]["details"][0]["metadata"]["model"] == "gemini-2.5-pro"
    assert flash.status == 200
    buckets = {b["modelId"]: b["remainingFraction"] for b in quota["buckets"]}
    assert buckets["gemini-2.5-pro"] == 0
    assert buckets["gemini-3-flash"] == 1


async def test_stream_ends_with_stop_and_usage(sim: Sim, http: HttpClient) -> None:
    """streamGenerateContent sends data: chunks only; the last has finishReason STOP and usage."""
    account = sim.account("gemini")
    with trio.fail_after(10):
        response = await call(
            http,
            "POST",
            url(sim, "streamGenerateContent?alt=sse"),
            gemini_headers(account),
            turn(sim),
        )
    assert response.status == 200
    events = sse_events(response.content)
    assert len(events) == 3
    assert all(name is None for name, _ in events)
    chunks = [data["response"] for _, data in events]
    assert (
        "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
        == SimConfig().text
    )
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None, None, "STOP"]
    assert chunks[-1]["usageMetadata"]["totalTokenCount"] > 0
    assert {c["modelVersion"] for c in chunks} == {"gemini-3-flash"}
    assert len({c["responseId"] for c in chunks}) == 1


async def test_json_mode_answer_fits_the_router_schema(sim: Sim, http: HttpClient) -> None:
    """A JSON-mode generateContent answers an object with reasoning and an allowed model_choice."""
    schema = {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string"},
            "model_choice": {"type": "string", "enum": ["flash", "pro"]},
        },
        "required": ["reasoning", "model_choice"],
    }
    config = {"responseMimeType": "application/json", "responseJsonSchema": schema}
    with trio.fail_after(10):
        response = await call(
            http,
            "POST",
            url(sim, "generateContent"),
            gemini_headers(sim.account("gemini")),
            turn(sim, generationConfig=config),
        )
    candidate = json_body(response)["response"]["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    answer = json.loads(candidate["content"]["parts"][0]["text"])
    assert answer["model_choice"] == "flash"
    assert isinstance(answer["reasoning"], str)


async def test_wrong_project_and_bad_token(sim: Sim, http: HttpClient) -> None:
    """Another account's project gets 403 PERMISSION_DENIED; a bad token 401 UNAUTHENTICATED."""
    account = sim.account("gemini")
    with trio.fail_after(10):
        wrong = await call(
            http,
            "POST",
            url(sim, "streamGenerateContent?alt=sse"),
            gemini_headers(account),
            {**turn(sim), "project": "someone-else"},
        )
        bad = await call(
            http, "POST", url(sim, "loadCodeAssist"), [("authorization", "Bearer ya29.nope")], {}
        )
    assert wrong.status == 403
    assert json_body(wrong)["error"]["status"] == "PERMISSION_DENIED"
    assert bad.status == 401
    assert json_body(bad)["error"]["status"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("length_s", "reason"), [(60.0, "RATE_LIMIT_EXCEEDED"), (86400.0, "QUOTA_EXHAUSTED")]
)
async def test_full_window_is_resource_exhausted_until_reset(
    sim: Sim, http: HttpClient, length_s: float, reason: str
) -> None:
    """429 RESOURCE_EXHAUSTED with ErrorInfo and RetryInfo; after the reset the turn passes."""
    account = sim.account("gemini")
    account.windows = [SimWindow("w", length_s, 1)]
    account.expires_at = sim.clock.now + 10 * length_s
    target = url(sim, "streamGenerateContent?alt=sse")
    with trio.fail_after(10):
        assert (await call(http, "POST", target, gemini_headers(account), turn(sim))).status == 200
        sim.clock.advance(10)
        refused = await call(http, "POST", target, gemini_headers(account), turn(sim))
        sim.clock.advance(length_s)
        again = await call(http, "POST", target, gemini_headers(account), turn(sim))
    assert refused.status == 429
    error = json_body(refused)["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    info, retry = error["details"]
    assert info["reason"] == reason
    assert info["domain"] == "cloudcode-pa.googleapis.com"
    assert retry["retryDelay"] == f"{int(length_s - 10)}s"
    assert again.status == 200


async def test_mid_stream_close_breaks_the_body(sim: Sim, http: HttpClient) -> None:
    """The close fault drops the connection before the finishing chunk."""
    account = sim.account("gemini")
    account.config = SimConfig(fail_after_events=1)
    with trio.fail_after(10), pytest.raises(UpstreamProtocolError):
        await call(
            http,
            "POST",
            url(sim, "streamGenerateContent?alt=sse"),
            gemini_headers(account),
            turn(sim),
        )
