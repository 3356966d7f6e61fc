"""Hang-ups, shutdown, large bodies and compressed bodies, through the whole proxy."""

from __future__ import annotations

import json
from typing import Any

import attrs
import trio
import zstandard

from tests.http_client import HttpClient
from tests.proxy.conftest import Env
from trio_pool.config import Config
from trio_pool.testing.faults import SimConfig

CLAUDE_HEADERS = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]
CLAUDE_STREAM = {"model": "m", "max_tokens": 8, "stream": True, "messages": []}


async def open_stream(env: Env, body: dict[str, Any]) -> trio.SocketStream:
    """A raw client connection that has sent one streaming request."""
    stream = await trio.open_tcp_stream(*env.running.addresses[0][:2])
    payload = json.dumps(body).encode()
    head = "POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in CLAUDE_HEADERS
    )
    await stream.send_all(f"{head}content-length: {len(payload)}\r\n\r\n".encode() + payload)
    return stream


async def in_flight(env: Env) -> int:
    async with HttpClient() as client:
        response = await client.request("GET", env.base + "/healthz")
    return sum(a["in_flight"] for a in json.loads(response.content)["accounts"])


async def test_client_hang_up_frees_the_upstream_at_once(make_env: Any) -> None:
    """A client that disconnects mid-stream ends the upstream request and the account's lease,
    and the tokens already spent are still counted."""
    env = await make_env(accounts=[("claude", "a")])
    env.state.config = SimConfig(deltas=200, event_delay_s=0.05)
    stream = await open_stream(env, CLAUDE_STREAM)
    with trio.fail_after(5):
        assert (await stream.receive_some(65536)).startswith(b"HTTP/1.1 200")
        assert await in_flight(env) == 1
        await stream.aclose()
        while await in_flight(env):
            await trio.sleep(0.01)
    # The input tokens announced before the hang-up are still counted.
    async with HttpClient() as client:
        health = json.loads((await client.request("GET", env.base + "/healthz")).content)
    assert health["accounts"][0]["tokens_today"]["input"] > 0


async def test_shutdown_ends_streams_with_an_in_stream_error(make_env: Any) -> None:
    """At the shutdown deadline a stream still running ends with the provider's error event."""
    env = await make_env(accounts=[("claude", "a")])
    env.state.config = SimConfig(deltas=200, event_delay_s=0.05)
    stream = await open_stream(env, CLAUDE_STREAM)
    received = b""
    with trio.fail_after(5):
        received += await stream.receive_some(65536)
        env.running.shutdown.begin(0.2)
        while chunk := await stream.receive_some(65536):
            received += chunk
    await stream.aclose()
    assert b"event: error" in received
    assert b"shutting down" in received
    # Terminated chunked body: the client sees a complete, well-formed message.
    assert received.endswith(b"0\r\n\r\n")


async def test_large_bodies_stream_to_one_account_without_retry(make_env: Any) -> None:
    """A body over max_inmem_body_bytes is streamed through; its 429 reaches the client as is."""

    def small_buffer(config: Config) -> Config:
        return attrs.evolve(config, max_inmem_body_bytes=1000)

    env = await make_env(accounts=[("claude", "a"), ("claude", "b")], tweak=small_buffer)
    body = dict(CLAUDE_STREAM, stream=False, messages=[{"role": "user", "content": "x" * 5000}])
    payload = json.dumps(body).encode()
    async with HttpClient() as client:
        ok = await client.request(
            "POST", env.base + "/v1/messages", headers=CLAUDE_HEADERS, content=payload
        )
        assert ok.status == 200
        for account in env.state.of("claude"):
            account.force("quota", 1)
        refused = await client.request(
            "POST", env.base + "/v1/messages", headers=CLAUDE_HEADERS, content=payload
        )
    assert refused.status == 429
    assert sum(a.requests for a in env.state.of("claude")) == 2


async def test_zstd_codex_bodies_are_understood(make_env: Any) -> None:
    """A zstd-compressed Codex body (as the built-in provider sends) still routes and streams."""
    env = await make_env(accounts=[("codex", "a")])
    body = {
        "model": "m",
        "instructions": "",
        "store": False,
        "input": "hi",
        "stream": True,
        "prompt_cache_key": "conv-1",
    }
    compressed = zstandard.ZstdCompressor().compress(json.dumps(body).encode())
    async with HttpClient() as client:
        response = await client.request(
            "POST",
            env.base + "/v1/responses",
            headers=[("content-type", "application/json"), ("content-encoding", "zstd")],
            content=compressed,
        )
    assert response.status == 200
    assert b"response.completed" in response.content
