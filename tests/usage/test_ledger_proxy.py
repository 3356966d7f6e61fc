"""Ledger rows written by the real proxy, for all three providers, streaming or not."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient, Reply
from tests.proxy.conftest import Env
from tests.usage.conftest import ledger_rows
from trio_pool.app import serve_proxy
from trio_pool.state.store import StateStore
from trio_pool.usage.ledger import hash_key
from trio_pool.usage.store import read_rollups, read_rows

CLAUDE = ("/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": []})
CODEX = ("/v1/responses", {"model": "gpt-5", "instructions": "", "store": False, "input": "hi"})
GEMINI_REQUEST = {
    "model": "gemini-2.5-pro",
    "project": "p",
    "user_prompt_id": "sess-1########1",
    "request": {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "session_id": "sess-1"},
}


async def post(base: str, path: str, body: Any, *headers: tuple[str, str]) -> Reply:
    async with HttpClient() as client:
        with trio.fail_after(10):
            return await client.request(
                "POST",
                base + path,
                headers=[
                    ("content-type", "application/json"),
                    ("anthropic-version", "2023-06-01"),
                    *headers,
                ],
                content=json.dumps(body).encode(),
            )


CASES = [
    ("claude", "/v1/messages", {**CLAUDE[1], "stream": True}, "claude-sonnet-4-5"),
    ("claude", "/v1/messages", CLAUDE[1], "claude-sonnet-4-5"),
    ("codex", "/v1/responses", {**CODEX[1], "stream": True}, "gpt-5"),
    ("gemini", "/v1internal:streamGenerateContent?alt=sse", GEMINI_REQUEST, "gemini-2.5-pro"),
    ("gemini", "/v1internal:generateContent", GEMINI_REQUEST, "gemini-2.5-pro"),
]


@pytest.mark.parametrize(("provider", "path", "body", "model"), CASES)
async def test_one_row_per_request_with_its_usage(
    env: Env, provider: str, path: str, body: Any, model: str
) -> None:
    """A proxied request leaves one row: provider, account, model, status, tokens, bytes."""
    response = await post(env.base, path, body)
    assert response.status == 200
    (row,) = await ledger_rows(env, 1)
    assert row.provider == provider
    assert row.account is not None
    assert row.account.startswith(f"{provider}/")
    assert row.model == model
    assert row.status == 200
    assert row.attempts == 1
    assert row.failures == ()
    assert row.bytes == len(response.content)
    assert row.usage.input > 0
    assert row.usage.output > 0
    assert row.ttfb_ms is not None
    assert row.duration_ms >= row.ttfb_ms
    assert row.user is None


async def test_a_failover_records_both_attempts_and_the_first_reason(env: Env) -> None:
    """Two attempts: the row names the answering account and why the first one failed."""
    path = "/v1internal:generateContent"
    assert (await post(env.base, path, GEMINI_REQUEST)).status == 200
    (first,) = await ledger_rows(env, 1)
    assert first.account is not None
    env.sim(first.account).force("quota", 1)  # the conversation is pinned to it
    assert (await post(env.base, path, GEMINI_REQUEST)).status == 200
    _, row = await ledger_rows(env, 2)
    assert row.attempts == 2
    (failure,) = row.failures
    assert failure.startswith(f"{first.account}: ")
    assert len(failure) > len(first.account) + 2  # a reason follows the name
    assert row.account not in (None, first.account)
    assert row.status == 200
    assert row.conversation == first.conversation


async def test_the_conversation_key_is_stored_hashed(env: Env) -> None:
    """Gemini's session id groups rows, but only its hash is in the ledger."""
    await post(env.base, "/v1internal:generateContent", GEMINI_REQUEST)
    (row,) = await ledger_rows(env, 1)
    assert row.conversation is not None
    assert "sess-1" not in row.conversation
    assert len(row.conversation) == 16


async def test_a_refused_request_is_a_row_without_tokens(make_env: Any) -> None:
    """Every account out of quota: the client's 429 is recorded, with each attempt's reason."""
    env: Env = await make_env(accounts=[("claude", "a")])
    env.sim("claude/a").force("quota", 5)
    response = await post(env.base, *CLAUDE)
    assert response.status == 429
    (row,) = await ledger_rows(env, 1)
    assert row.status == 429
    assert row.attempts == 1
    assert row.failures[0].startswith("claude/a: ")
    assert row.usage.input == 0


async def test_rows_survive_a_restart_and_roll_up(env: Env) -> None:
    """A proxy shut down flushes its buffer: a reopened db has every row and the hour's sums."""
    config = env.running.config
    async with trio.open_nursery() as nursery:
        second = await nursery.start(serve_proxy, config)
        for _ in range(3):
            assert (await post(second.base_url, *CLAUDE)).status == 200
        second.shutdown.begin(1.0)
    store = await StateStore.open(config.data_dir)
    try:
        rows = await store.run(read_rows)
        rollups = await store.run(read_rollups)
    finally:
        await store.aclose()
    assert len(rows) == 3
    assert sum(t.requests for t in rollups.values()) == 3
    assert sum(t.usage.output for t in rollups.values()) == sum(r.usage.output for r in rows)
    assert {k.model for k in rollups} == {"claude-sonnet-4-5"}


def test_hash_key_is_short_and_stable() -> None:
    """The same key always hashes the same; no key, no hash."""
    assert hash_key("abc") == hash_key("abc") != hash_key("abd")
    assert hash_key(None) is None
    assert hash_key("") is None
