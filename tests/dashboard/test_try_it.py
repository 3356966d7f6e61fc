"""Try it: the request each provider's route accepts, the answer's text, and the bounds."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.dashboard.data_helpers import serving
from trio_pool.dashboard import try_it
from trio_pool.errors import TryInputError
from trio_pool.providers import find_route
from trio_pool.providers.base import ProviderName
from trio_pool.server.connection import Exchange
from trio_pool.server.server import Shutdown
from trio_pool.upstream.client import UpstreamClient

UPSTREAMS = {
    "codex": {"upstream": "http://up/codex", "backend": "http://up/backend"},
    "claude": {"upstream": "http://up/claude"},
    "gemini": {"upstream": "http://up/gemini"},
}


def _sse(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()


ANSWERS: dict[str, tuple[str, bytes]] = {
    "claude": (
        "application/json",
        json.dumps(
            {
                "model": "claude-x",
                "content": [
                    {"type": "thinking", "thinking": "hmm"},
                    {"type": "text", "text": "Hello from Claude"},
                ],
            }
        ).encode(),
    ),
    "codex": (
        "text/event-stream",
        _sse("response.created", {"response": {"model": "gpt-x"}})
        + _sse("response.output_text.delta", {"delta": "Hello "})
        + _sse("response.output_text.delta", {"delta": "from Codex"})
        + _sse("response.completed", {"response": {"model": "gpt-x", "status": "completed"}}),
    ),
    "gemini": (
        "application/json",
        json.dumps(
            {
                "response": {
                    "candidates": [
                        {
                            "content": {
                                "parts": [
                                    {"text": "thinking", "thought": True},
                                    {"text": "Hello from Gemini"},
                                ]
                            }
                        }
                    ],
                    "modelVersion": "gemini-x",
                }
            }
        ).encode(),
    ),
}


@pytest.mark.parametrize("provider", ["claude", "codex", "gemini"])
async def test_try_goes_through_the_proxy_route_as_the_caller(provider: ProviderName) -> None:
    """The request is one the proxy routes as a model call of that provider, carries the
    internal token and the caller's name, and the answer's text, model and account come back."""
    seen: list[Exchange] = []
    bodies: list[bytes] = []
    shutdown = Shutdown()

    async def fake_proxy(ex: Exchange) -> None:
        seen.append(ex)
        bodies.append(await ex.read_body())
        content_type, answer = ANSWERS[provider]
        headers = [("content-type", content_type), ("x-trio-pool-account", f"{provider}/a")]
        await ex.respond(200, headers, answer)

    client = UpstreamClient()
    try:
        async with serving(fake_proxy, shutdown) as base:
            request = try_it.parse_try({"provider": provider, "prompt": "Say hello"})
            with trio.fail_after(10):
                answer = await try_it.try_request(client, base, "secret", "ann", request)
    finally:
        await client.aclose()
    head = seen[0].head
    route = find_route(head, UPSTREAMS)  # type: ignore[arg-type]
    assert route is not None
    assert (route.provider, route.inference) == (provider, True)
    assert head.get("x-trio-pool-internal") == "secret"
    assert head.get("x-trio-pool-user") == "ann"
    assert "Say hello" in bodies[0].decode()
    assert answer["provider"] == provider
    assert answer["status"] == 200
    assert answer["account"] == f"{provider}/a"
    assert answer["text"] == f"Hello from {provider.capitalize()}"
    assert answer["model"] == f"{provider.replace('codex', 'gpt')}-x"
    assert answer["ms"] >= 0


async def test_try_without_account_header_reports_null_and_error_text() -> None:
    """An error answer: its status, its message as the text, and no account named."""
    shutdown = Shutdown()

    async def fake_proxy(ex: Exchange) -> None:
        await ex.read_body()
        body = json.dumps({"error": {"type": "pool_exhausted", "message": "all cooling"}})
        await ex.respond(429, [("content-type", "application/json")], body.encode())

    client = UpstreamClient()
    try:
        async with serving(fake_proxy, shutdown) as base:
            request = try_it.parse_try({"provider": "claude", "prompt": "hi", "model": "m1"})
            answer = await try_it.try_request(client, base, "secret", None, request)
    finally:
        await client.aclose()
    assert (answer["status"], answer["account"], answer["text"]) == (429, None, "all cooling")
    assert answer["model"] == "m1"


async def test_try_gives_up_after_its_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy that never answers yields 504 with the reason, not a hang."""
    monkeypatch.setattr(try_it, "TIMEOUT_S", 0.2)
    shutdown = Shutdown()

    async def silent(ex: Exchange) -> None:
        await ex.read_body()
        await trio.sleep_forever()

    client = UpstreamClient()
    try:
        async with serving(silent, shutdown) as base:
            request = try_it.parse_try({"provider": "gemini", "prompt": "hi"})
            with trio.fail_after(10):
                answer = await try_it.try_request(client, base, "secret", "ann", request)
    finally:
        await client.aclose()
    assert answer["status"] == 504
    assert "no answer" in answer["text"]


def test_codex_stream_failure_becomes_the_text() -> None:
    """A Codex stream that fails without text reports the failure's message."""
    body = _sse("response.failed", {"response": {"error": {"message": "usage limit"}}})
    assert try_it.read_answer("codex", 200, body) == ("usage limit", None)


def test_prompt_limit_is_2000_characters() -> None:
    """2000 characters are accepted, 2001 are not."""
    assert try_it.parse_try({"provider": "codex", "prompt": "x" * 2000}).model
    with pytest.raises(TryInputError):
        try_it.parse_try({"provider": "codex", "prompt": "x" * 2001})
