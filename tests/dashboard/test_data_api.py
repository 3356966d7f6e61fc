"""The data API over real loopback HTTP, with a stand-in proxy and a real state.db."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.dashboard.data_helpers import StandIn, as_json, call, make_standin, post_headers, serving
from trio_pool import clock
from trio_pool.auth.directory import Directory
from trio_pool.auth.model import Caller
from trio_pool.dashboard import data_api, http
from trio_pool.providers.base import QuotaReading, QuotaWindow, TokenUsage
from trio_pool.server.connection import Exchange
from trio_pool.state.store import StateStore
from trio_pool.usage.ledger import LedgerRow
from trio_pool.usage.store import insert_rows

KEY = "tp-" + "A" * 40


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    state = await StateStore.open(tmp_path)
    yield state
    await state.aclose()


@pytest.fixture
async def api(store: StateStore) -> AsyncIterator[tuple[StandIn, str]]:
    """A stand-in proxy with a state db, served by data_api.handle on 127.0.0.1:0 (to an admin:
    a plain user sees only their own rows, see tests/proxy/test_user_views.py)."""
    proxy = make_standin(store)

    async def handler(ex: Exchange) -> None:
        parts = [urllib.parse.unquote(p) for p in ex.head.path.strip("/").split("/")]
        if not await data_api.handle(ex, proxy, Caller("admin"), parts):
            await http.error(ex, 404, "not_found", "not ours")

    async with serving(handler, proxy.shutdown) as base:
        proxy.self_call.url = base
        yield proxy, base
    await proxy.client.aclose()


def _row(at: float, user: str | None = None, status: int = 200) -> LedgerRow:
    return LedgerRow(
        at=at,
        provider="codex",
        account="codex/a",
        model="gpt",
        conversation=None,
        status=status,
        attempts=1,
        failures=(),
        ttfb_ms=None,
        duration_ms=5.0,
        usage=TokenUsage(7, 0, 3, 0),
        user=user,
    )


async def test_overview_has_every_provider_and_the_last_24h(api: tuple[StandIn, str]) -> None:
    """GET /api/overview: pooled windows from the pool, totals from the ledger."""
    proxy, base = api
    now = clock.now()
    proxy.pool.set_account("codex/a", "codex")
    window = QuotaWindow("5h", 0.25, 5 * 3600.0, now + 3600)
    proxy.pool.observe("codex/a", QuotaReading((window,)), now)
    assert proxy.history is not None
    await proxy.history.run(insert_rows, [_row(now - 60), _row(now - 30, status=500)])
    status, _headers, body = await call(proxy.client, base, "GET", "/api/overview")
    assert status == 200
    doc = as_json(body)
    codex = next(p for p in doc["providers"] if p["provider"] == "codex")
    assert codex["accounts"] == 1
    assert codex["windows"][0]["used_pct"] == pytest.approx(25.0)
    assert doc["last_24h"] == {"requests": 2, "tokens": 20, "errors": 1, "failovers": 0}


async def test_pool_lists_accounts_and_problems(api: tuple[StandIn, str]) -> None:
    """GET /api/pool: each AccountView as JSON plus "disabled", and the file problems."""
    proxy, base = api
    proxy.pool.set_account("claude/a", "claude")
    proxy.pool.set_account("claude/b", "claude", disabled=True)
    proxy.registry.problems["gemini/x"] = "not JSON"
    status, _headers, body = await call(proxy.client, base, "GET", "/api/pool")
    doc = as_json(body)
    assert status == 200
    assert [(a["name"], a["disabled"]) for a in doc["accounts"]] == [
        ("claude/a", False),
        ("claude/b", True),
    ]
    assert doc["accounts"][0]["tokens_today"] == {
        "input": 0,
        "cached": 0,
        "output": 0,
        "reasoning": 0,
    }
    assert doc["problems"] == [{"account": "gemini/x", "reason": "not JSON"}]


async def test_usage_series_and_bad_parameters(api: tuple[StandIn, str]) -> None:
    """GET /api/usage: 24 hours per series; unknown hours or by are a 400."""
    proxy, base = api
    assert proxy.history is not None
    await proxy.history.run(insert_rows, [_row(clock.now(), user="ann"), _row(clock.now())])
    status, _headers, body = await call(proxy.client, base, "GET", "/api/usage?hours=24&by=user")
    doc = as_json(body)
    assert status == 200
    assert len(doc["hours"]) == 24
    assert {s["label"]: s["requests"][-1] for s in doc["series"]} == {"ann": 1, "(local)": 1}
    for query in ("hours=5", "hours=x", "by=colour"):
        status, _headers, body = await call(proxy.client, base, "GET", f"/api/usage?{query}")
        assert status == 400
        assert as_json(body)["error"]["type"] == "invalid_request"


async def test_usage_without_a_state_db_is_empty(api: tuple[StandIn, str]) -> None:
    """No state db: the hours are there, with no series and zero totals."""
    proxy, base = api
    proxy.history = None
    status, _headers, body = await call(proxy.client, base, "GET", "/api/usage?hours=168")
    doc = as_json(body)
    assert (status, len(doc["hours"]), doc["series"]) == (200, 168, [])
    status, _headers, body = await call(proxy.client, base, "GET", "/api/overview")
    assert as_json(body)["last_24h"]["requests"] == 0


async def test_requests_merge_memory_and_ledger(api: tuple[StandIn, str]) -> None:
    """GET /api/requests: the live feed's ends plus older ledger rows, newest first, once each."""
    proxy, base = api
    now = clock.now()
    assert proxy.history is not None
    await proxy.history.run(insert_rows, [_row(now - 100), _row(now - 10)])
    live_end = {**_doc(now - 10), "id": 5}
    proxy.live.publish("end", live_end)
    status, _headers, body = await call(proxy.client, base, "GET", "/api/requests?limit=10")
    docs = as_json(body)["requests"]
    assert status == 200
    assert docs[0]["id"] == 5
    assert len(docs) == 2
    assert docs[1]["at"] == pytest.approx(now - 100)
    status, _headers, _body = await call(proxy.client, base, "GET", "/api/requests?limit=0")
    assert status == 400


def _doc(at: float) -> dict[str, object]:
    return {"at": at, "provider": "codex", "account": "codex/a", "status": 200}


async def test_setup_has_a_placeholder_and_post_fills_the_key(api: tuple[StandIn, str]) -> None:
    """GET /api/setup uses the Host the caller came by and {{KEY}}; POST fills in the key."""
    proxy, base = api
    proxy.directory = Directory(None, friend_code="friends-123")  # shared: keys in the steps
    status, _headers, body = await call(proxy.client, base, "GET", "/api/setup")
    doc = as_json(body)
    assert status == 200
    assert doc["address"] == base
    assert [c["client"] for c in doc["clients"]] == ["codex", "claude", "gemini", "chat"]
    assert "{{KEY}}" in json.dumps(doc)
    payload = json.dumps({"key": KEY}).encode()
    status, _headers, body = await call(
        proxy.client, base, "POST", "/api/setup", payload, post_headers()
    )
    text = body.decode()
    assert status == 200
    assert "{{KEY}}" not in text
    assert KEY in text


async def test_setup_has_claude_code_on_codex_and_chat_clients(api: tuple[StandIn, str]) -> None:
    """GET /api/setup (what the Setup page renders) holds `setup claude --on codex` with its
    model lines, and the Chat Completions base URL, key and a Codex model."""
    proxy, base = api
    proxy.directory = Directory(None, friend_code="friends-123")
    _status, _headers, body = await call(proxy.client, base, "GET", "/api/setup")
    steps = {c["client"]: [s["text"] for s in c["steps"]] for c in as_json(body)["clients"]}
    claude = "\n".join(steps["claude"])
    assert f"trio-pool setup claude --write --server {base} --key {{{{KEY}}}} --on codex" in claude
    assert '"ANTHROPIC_MODEL": "gpt-6.1-sol"' in claude
    assert '"ANTHROPIC_DEFAULT_HAIKU_MODEL"' in claude
    chat = "\n".join(steps["chat"])
    assert f"OPENAI_BASE_URL={base}/v1\nOPENAI_API_KEY={{{{KEY}}}}\n" in chat
    assert "# model: gpt-6.1-sol" in chat


async def test_setup_post_refuses_bad_keys(api: tuple[StandIn, str]) -> None:
    """A malformed key is a 400 (the CSRF header is the router's: tests/proxy/test_shared_mode)."""
    proxy, base = api
    bad = json.dumps({"key": "tp-short"}).encode()
    status, _h, _b = await call(proxy.client, base, "POST", "/api/setup", bad, post_headers())
    assert status == 400


@pytest.mark.parametrize(
    "document",
    [
        {"provider": "openai", "prompt": "hi"},
        {"provider": "claude", "prompt": ""},
        {"provider": "claude", "prompt": "x" * 2001},
        {"provider": "claude", "prompt": "hi", "model": 5},
    ],
)
async def test_try_refuses_bad_input(api: tuple[StandIn, str], document: object) -> None:
    """POST /api/try with an unknown provider, an empty or too long prompt: 400."""
    proxy, base = api
    payload = json.dumps(document).encode()
    status, _h, body = await call(proxy.client, base, "POST", "/api/try", payload, post_headers())
    assert status == 400
    assert as_json(body)["error"]["type"] == "invalid_request"


async def test_unknown_paths_are_not_ours_and_wrong_methods_are_405(
    api: tuple[StandIn, str],
) -> None:
    """handle() leaves other paths to the router; a known path with another method is 405."""
    proxy, base = api
    status, _h, _b = await call(proxy.client, base, "GET", "/api/users")
    assert status == 404
    status, headers, _b = await call(proxy.client, base, "GET", "/api/try")
    assert (status, headers.get("allow")) == (405, "POST")
