"""The simulated token and usage endpoints refuse callers that do not look like the real CLIs."""

from __future__ import annotations

import pytest
import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, claude_headers, codex_headers, header, json_body
from trio_pool.providers import identity
from trio_pool.testing import issue

JSON = [("content-type", "application/json")]


def claude_refresh(sim: Sim) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "refresh_token": sim.account("claude").refresh_token,
        "client_id": issue.CLAUDE_CLIENT_ID,
    }


@pytest.mark.parametrize(
    ("agent", "status"),
    [
        (None, 429),
        ("python-httpx/0.28", 429),
        ("claude-code/2.1.330", 429),
        ("claude-cli/2.1.330 (external, cli)", 404),
    ],
)
async def test_claude_token_endpoint_refuses_anything_but_an_axios_caller(
    sim: Sim, http: HttpClient, agent: str | None, status: int
) -> None:
    """No UA or a non-axios one is 429, claude-cli/ is 404, and a refusal spends no token."""
    headers = JSON + ([("user-agent", agent)] if agent else [])
    with trio.fail_after(10):
        refused = await call(
            http, "POST", f"{sim.base}/v1/oauth/token", headers, claude_refresh(sim)
        )
        passed = await call(
            http,
            "POST",
            f"{sim.base}/v1/oauth/token",
            [*JSON, *identity.anthropic_token_headers()],
            claude_refresh(sim),
        )
    assert refused.status == status
    assert json_body(refused)["type"] == "error"
    assert passed.status == 200
    assert sim.account("claude").refreshes == 1


@pytest.mark.parametrize(
    "headers",
    [
        [],
        [("user-agent", "codex_cli_rs/0.169.0 (Linux 6.1; x86_64)")],
        [("originator", "codex_cli_rs"), ("user-agent", "python-httpx/0.28")],
    ],
)
async def test_codex_token_endpoint_challenges_callers_without_codex_identity(
    sim: Sim, http: HttpClient, headers: list[tuple[str, str]]
) -> None:
    """Without originator and a UA that starts with it, auth.openai.com's Cloudflare challenges."""
    account = sim.account("codex")
    body = {
        "client_id": issue.CODEX_CLIENT_ID,
        "grant_type": "refresh_token",
        "refresh_token": account.refresh_token,
    }
    with trio.fail_after(10):
        refused = await call(http, "POST", f"{sim.base}/oauth/token", JSON + headers, body)
        passed = await call(
            http, "POST", f"{sim.base}/oauth/token", [*JSON, *identity.codex_headers()], body
        )
    assert refused.status == 403
    assert (header(refused, "content-type") or "").startswith("text/html")
    assert header(refused, "cf-mitigated") == "challenge"
    assert passed.status == 200
    assert account.refreshes == 1


async def test_usage_polls_need_the_clients_identity(sim: Sim, http: HttpClient) -> None:
    """wham/usage without Codex's identity is challenged; oauth/usage without claude-code/ is 429."""
    codex, claude = sim.account("codex"), sim.account("claude")
    with trio.fail_after(10):
        wham = f"{sim.base}/backend-api/wham/usage"
        codex_bare = await call(http, "GET", wham, codex_headers(codex))
        codex_ok = await call(http, "GET", wham, [*codex_headers(codex), *identity.codex_headers()])
        usage = f"{sim.base}/api/oauth/usage"
        claude_bare = await call(http, "GET", usage, claude_headers(claude))
        claude_ok = await call(
            http,
            "GET",
            usage,
            [*claude_headers(claude), ("user-agent", identity.claude_code_user_agent())],
        )
    assert codex_bare.status == 403
    assert header(codex_bare, "cf-mitigated") == "challenge"
    assert codex_ok.status == 200
    assert claude_bare.status == 429
    assert claude_ok.status == 200
