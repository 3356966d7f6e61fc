"""The whole proxy, driven by the official SDKs over loopback, against the simulated upstreams."""

from __future__ import annotations

import json
import logging
from typing import Any

import anthropic
import openai
import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env

pytestmark = pytest.mark.usefixtures("env")

GEMINI_BODY = {
    "model": "gemini-2.5-pro",
    "project": "the-clients-own-project",
    "user_prompt_id": "sess-1########1",
    "request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "session_id": "sess-1"},
}


def openai_client(env: Env) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{env.base}/v1", api_key="client-secret-key", max_retries=0)


def anthropic_client(env: Env) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=env.base, auth_token="pool", max_retries=0)


async def raw(env: Env, method: str, path: str, body: Any = None, **headers: str) -> Reply:
    async with HttpClient() as client:
        with trio.fail_after(10):
            return await client.request(
                method,
                env.base + path,
                headers=[("content-type", "application/json"), *headers.items()],
                content=b"" if body is None else json.dumps(body).encode(),
            )


def sse_data(raw_body: bytes) -> list[dict[str, Any]]:
    return [
        json.loads(line[5:])
        for line in raw_body.decode().splitlines()
        if line.startswith("data:") and line[5:].strip()
    ]


def served_by(env: Env, provider: str) -> list[str]:
    return [a.key for a in env.state.of(provider) if a.generations]  # type: ignore[arg-type]


async def test_openai_sdk_streams_a_response_through_the_pool(env: Env) -> None:
    """Codex Responses over SSE: the SDK sees every event and the text arrives whole."""

    def run() -> tuple[str, list[str]]:
        # Closed clients: an SDK's pooled sockets left to the garbage collector would raise
        # ResourceWarning in whatever test happens to run then.
        with openai_client(env) as client:
            stream = client.responses.create(
                model="gpt-5", instructions="Be brief.", input="hi", store=False, stream=True
            )
            types: list[str] = []
            text = ""
            for event in stream:
                types.append(event.type)
                if event.type == "response.output_text.delta":
                    text += event.delta
        return text, types

    text, types = await trio.to_thread.run_sync(run)
    assert text == env.state.config.text
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    (key,) = served_by(env, "codex")
    account = env.sim(key)
    # The client's key was replaced by the pooled account's credentials.
    assert account.last_header("authorization") == f"Bearer {account.access_token}"
    assert account.last_header("chatgpt-account-id") == account.account_id


async def test_anthropic_sdk_streaming_and_non_streaming(env: Env) -> None:
    """Claude Messages: streaming and unary both work; the OAuth beta is added upstream."""

    def run() -> tuple[str, str]:
        with anthropic_client(env) as client:
            with client.messages.stream(
                model="claude-opus-5-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            ) as stream:
                streamed = "".join(stream.text_stream)
            unary = client.messages.create(
                model="claude-opus-5-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
            )
            block = unary.content[0]
            assert block.type == "text"
            return streamed, block.text

    streamed, unary_text = await trio.to_thread.run_sync(run)
    assert streamed == env.state.config.text
    assert unary_text == env.state.config.text
    for key in served_by(env, "claude"):
        account = env.sim(key)
        assert "oauth-2025-04-20" in (account.last_header("anthropic-beta") or "")
        assert account.last_header("x-api-key") is None


async def test_gemini_stream_gets_the_accounts_project(env: Env) -> None:
    """Gemini: the body's project is rewritten to the chosen account's, the stream ends with STOP."""
    response = await raw(env, "POST", "/v1internal:streamGenerateContent?alt=sse", GEMINI_BODY)
    assert response.status == 200
    chunks = sse_data(response.content)
    assert chunks[-1]["response"]["candidates"][0]["finishReason"] == "STOP"
    (key,) = served_by(env, "gemini")
    assert json.loads(env.sim(key).last_body)["project"] == env.sim(key).project


async def test_a_conversation_stays_on_one_account(env: Env) -> None:
    """Ten turns of one Claude session all go to the same account."""
    for _ in range(10):
        response = await raw(
            env,
            "POST",
            "/v1/messages",
            {"model": "m", "max_tokens": 8, "messages": []},
            **{"anthropic-version": "2023-06-01", "x-claude-code-session-id": "s-1"},
        )
        assert response.status == 200
    assert len(served_by(env, "claude")) == 1


async def test_quota_429_fails_over_before_the_client_sees_it(env: Env) -> None:
    """An account answering its quota 429 is skipped; the client gets the other account's answer."""
    for account in env.state.of("claude"):
        account.force("quota", 1)
    first, second = env.state.of("claude")
    second.forced.clear()

    def run() -> str:
        with anthropic_client(env) as client:
            message = client.messages.create(
                model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}]
            )
        block = message.content[0]
        return block.text if block.type == "text" else ""

    assert await trio.to_thread.run_sync(run) == env.state.config.text
    health = json.loads((await raw(env, "GET", "/healthz")).content)
    states = {a["name"]: a["state"] for a in health["accounts"]}
    if first.requests:  # the pool may have picked the healthy one first
        assert states[first.key] == "cooling"
    assert second.generations == 1


async def test_every_account_exhausted_gives_429_naming_each(env: Env) -> None:
    """When all accounts are out of quota the client gets one 429 with Retry-After and reasons."""
    for account in env.state.of("codex"):
        account.force("quota", 5)
    response = await raw(
        env,
        "POST",
        "/v1/responses",
        {"model": "m", "instructions": "", "store": False, "input": "hi", "stream": True},
    )
    assert response.status == 429
    body = json.loads(response.content)
    assert body["error"]["message"]
    for account in env.state.of("codex"):
        assert account.key in body["error"]["message"]
    assert int(dict(response.headers)[b"retry-after"]) >= 1


async def test_expired_token_is_refreshed_and_written_back(env: Env) -> None:
    """A 401 makes the proxy refresh once, retry the same account and save the new tokens."""
    account = env.state.of("codex")[0]
    for other in env.state.of("codex")[1:]:
        other.force("quota", 3)
    account.force("unauthorized", 1)
    old_refresh = account.refresh_token
    response = await raw(
        env,
        "POST",
        "/v1/responses",
        {"model": "m", "instructions": "", "store": False, "input": "hi", "stream": True},
    )
    assert response.status == 200
    assert account.refreshes == 1
    saved = json.loads((env.pool_dir / "codex" / f"{account.name}.json").read_text())
    assert saved["tokens"]["refresh_token"] == account.refresh_token != old_refresh
    assert oct((env.pool_dir / "codex" / f"{account.name}.json").stat().st_mode & 0o777) == "0o600"


async def test_mid_stream_failure_ends_with_the_providers_error_event(make_env: Any) -> None:
    """An upstream that dies mid-stream ends the client's stream with an in-stream error, not a cut."""
    from trio_pool.testing.faults import SimConfig

    env = await make_env(accounts=[("claude", "a")])
    env.state.config = SimConfig(deltas=5, fail_after_events=3, fail_mode="close")
    response = await raw(
        env,
        "POST",
        "/v1/messages",
        {"model": "m", "max_tokens": 8, "stream": True, "messages": []},
        **{"anthropic-version": "2023-06-01"},
    )
    assert response.status == 200
    events = sse_data(response.content)
    assert events[-1]["type"] == "error"


async def test_unknown_path_is_404_in_the_providers_shape(env: Env) -> None:
    """Unknown paths get 404 shaped like the provider the path belongs to."""
    gemini = await raw(env, "POST", "/v1internal/nope", {})
    assert gemini.status == 404
    assert json.loads(gemini.content)["error"]["status"] == "NOT_FOUND"
    claude = await raw(env, "GET", "/v1/nope", None, **{"anthropic-version": "2023-06-01"})
    assert claude.status == 404
    assert json.loads(claude.content)["type"] == "error"


async def test_secrets_never_reach_the_logs(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    """Tokens of the pool and of the client never appear in any log line."""
    caplog.set_level(logging.DEBUG, logger="trio_pool")
    account = env.state.of("claude")[0]
    account.force("unauthorized", 1)
    await raw(
        env,
        "POST",
        "/v1/messages",
        {"model": "m", "max_tokens": 8, "messages": []},
        **{
            "anthropic-version": "2023-06-01",
            "authorization": "Bearer sk-ant-oat01-CLIENTSECRET123456",
        },
    )
    text = caplog.text
    for sim in env.state.accounts.values():
        assert sim.access_token not in text
        assert sim.refresh_token not in text
    assert "CLIENTSECRET" not in text


async def test_healthz_lists_every_account(env: Env) -> None:
    """/healthz answers with each pooled account and its state."""
    response = await raw(env, "GET", "/healthz")
    document = json.loads(response.content)
    assert document["status"] == "ok"
    assert {a["name"] for a in document["accounts"]} == set(env.state.accounts)
