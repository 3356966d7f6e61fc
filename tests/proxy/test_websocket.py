"""Codex Responses over WebSocket through the proxy: a real trio-websocket client, the simulator
behind, one pooled account per socket, failover at the handshake."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import trio
import trio_websocket

from tests.proxy.conftest import Env
from tests.testing.test_websocket import connect, create, turn
from trio_pool import clock
from trio_pool.providers.base import OutcomeKind
from trio_pool.providers.codex import CodexProvider
from trio_pool.proxy.ws_frames import error_frame_outcome
from trio_pool.testing.faults import SimConfig, full_text
from trio_pool.testing.websocket import ws_sim
from trio_pool.upstream.websocket import Closed

CODEX = [("codex", "a"), ("codex", "b")]


def url(env: Env, path: str = "/v1/responses") -> str:
    return env.base.replace("http://", "ws://") + path


def client_headers(session: str = "thread-1") -> list[tuple[bytes, bytes]]:
    """What Codex sends on the handshake (its own credentials are replaced by the pool's)."""
    return [
        (b"authorization", b"Bearer client-own-token"),
        (b"chatgpt-account-id", b"client-own-account"),
        (b"openai-beta", b"responses_websockets=2026-02-06"),
        (b"originator", b"codex_exec"),
        (b"session-id", session.encode()),
        (b"thread-id", session.encode()),
        (b"x-codex-window-id", b"w-1"),
    ]


@pytest.fixture
async def codex_env(make_env: Callable[..., Any]) -> Env:
    env: Env = await make_env(accounts=CODEX)
    return env


def served(env: Env) -> list[str]:
    return [a.key for a in env.state.of("codex") if a.generations]


async def test_multi_turn_socket_stays_on_one_account(codex_env: Env) -> None:
    """Warm-up and chained turns on one socket all run on one account with its credentials."""
    env = codex_env
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            previous = (await turn(ws, create(generate=False)))[-1]["response"]["id"]
            for _ in range(3):
                events = await turn(ws, create(previous_response_id=previous))
                assert events[-1]["type"] == "response.completed", events[-1]
                previous = events[-1]["response"]["id"]
    (key,) = served(env)
    account = env.sim(key)
    assert account.generations == 3
    assert account.last_header("authorization") == f"Bearer {account.access_token}"
    assert account.last_header("chatgpt-account-id") == account.account_id
    assert account.last_header("openai-beta") == "responses_websockets=2026-02-06"
    assert account.last_header("originator") == "codex_exec"
    assert account.last_header("x-codex-window-id") == "w-1"


async def test_quota_refusal_at_the_handshake_lands_on_the_next_account(codex_env: Env) -> None:
    """A quota 429 on the upgrade fails over before the client hears anything."""
    env = codex_env
    first, second = env.state.of("codex")
    first.force("quota", 1)
    second.force("quota", 1)
    second.forced.clear()
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            events = await turn(ws, create())
    assert events[-1]["type"] == "response.completed"
    assert second.generations == 1
    assert first.generations == 0
    if first.requests:  # the pool may have picked the healthy one first
        states = {v.name: v.state for v in env.services.pool.accounts(clock.now())}
        assert states[first.key] == "cooling"


async def test_401_at_the_handshake_refreshes_and_retries_the_same_account(
    codex_env: Env,
) -> None:
    """An expired token on the upgrade is refreshed once and the same account serves the socket."""
    env = codex_env
    account, other = env.state.of("codex")
    other.force("quota", 3)
    account.force("unauthorized", 1)
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            events = await turn(ws, create())
    assert events[-1]["type"] == "response.completed"
    assert account.refreshes == 1
    assert account.generations == 1


async def test_every_account_refusing_gives_the_client_the_upstreams_429(
    codex_env: Env,
) -> None:
    """When all accounts refuse, the client's upgrade gets the upstream's 429 and body."""
    env = codex_env
    for account in env.state.of("codex"):
        account.force("quota", 5)
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as caught:
        async with connect(url(env), client_headers()):
            pass
    assert caught.value.status_code == 429
    assert json.loads(caught.value.body or b"{}")["error"]["type"] == "usage_limit_reached"


async def test_upstream_close_reaches_the_client_with_its_code(codex_env: Env) -> None:
    """A mid-session upstream close arrives at the client with the same code and reason."""
    env = codex_env
    sim = ws_sim(env.state)
    for account in env.state.of("codex"):
        sim.close_after_turn[account.key] = Closed(4000, "upstream says bye")
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            await turn(ws, create())
            with pytest.raises(trio_websocket.ConnectionClosed) as caught:
                await ws.get_message()
    assert caught.value.reason is not None
    assert (caught.value.reason.code, caught.value.reason.reason) == (4000, "upstream says bye")


async def test_vanished_client_closes_the_upstream_socket(codex_env: Env) -> None:
    """A client whose TCP connection drops takes its upstream socket with it at once."""
    env = codex_env
    sim = ws_sim(env.state)
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            await turn(ws, create())
            assert sim.open_sockets == 1
            await trio.aclose_forcefully(ws._stream)
            await sim.wait_open(0)
    assert sim.sockets_total == 1
    views = env.services.pool.accounts(clock.now())
    assert all(v.in_flight == 0 for v in views)


async def test_frames_relay_in_order_under_load(make_env: Callable[..., Any]) -> None:
    """500 delta frames per turn on several sockets at once all arrive, in order."""
    env: Env = await make_env(accounts=CODEX)
    env.state.config = SimConfig(deltas=500, delta_bytes=24)
    expected = full_text(env.state.config)

    async def one(session: str) -> None:
        async with connect(url(env), client_headers(session)) as ws:
            for _ in range(2):
                events = await turn(ws, create())
                text = "".join(
                    e["delta"] for e in events if e["type"] == "response.output_text.delta"
                )
                assert text == expected

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(one, f"thread-{i}")
    assert sum(a.generations for a in env.state.of("codex")) == 12


async def test_realtime_pass_through_relays_both_ways(codex_env: Env) -> None:
    """/v1/realtime is relayed (text and binary, in order) on a pooled account and closed cleanly."""
    env = codex_env
    with trio.fail_after(10):
        async with connect(url(env, "/v1/realtime?model=gpt-realtime"), client_headers()) as ws:
            for i in range(200):
                await ws.send_message(f"m{i}" if i % 2 else f"b{i}".encode())
            for i in range(200):
                assert await ws.get_message() == (f"m{i}" if i % 2 else f"b{i}".encode())
        await ws_sim(env.state).wait_open(0)
    (account,) = [a for a in env.state.of("codex") if a.requests]
    assert account.last_path == "/backend-api/codex/realtime"


async def test_frames_update_the_pool(codex_env: Env) -> None:
    """codex.rate_limits frames set the account's windows; response.completed counts tokens."""
    env = codex_env
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            await turn(ws, create())
            await turn(ws, create())  # its rate-limit frame shows the first turn's use
    (key,) = served(env)
    (view,) = [v for v in env.services.pool.accounts(clock.now()) if v.name == key]
    windows = {w.name: w.used for w in view.windows}
    assert windows["5h"] > 0
    assert view.tokens_total.output > 0


async def test_quota_error_frame_moves_the_next_socket(codex_env: Env) -> None:
    """A usage_limit_reached error frame benches the account: the next socket goes elsewhere."""
    env = codex_env
    sim = ws_sim(env.state)
    for account in env.state.of("codex"):
        sim.force_frame(account.key, "quota")
    with trio.fail_after(10):
        async with connect(url(env), client_headers()) as ws:
            (error,) = await turn(ws, create())
        assert error["status"] == 429
        first = next(a for a in env.state.of("codex") if a.requests)
        sim.frame_faults.clear()
        async with connect(url(env), client_headers()) as ws:
            events = await turn(ws, create())
    assert events[-1]["type"] == "response.completed"
    (key,) = served(env)
    assert key != first.key


async def test_other_upgrade_paths_are_404(codex_env: Env) -> None:
    """An upgrade on a path the proxy does not relay is refused with 404 (Codex falls back)."""
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as caught:
        async with connect(url(codex_env, "/v1/nothing-here"), client_headers()):
            pass
    assert caught.value.status_code == 404


def test_error_frames_are_classified_like_http_answers() -> None:
    """Quota frames bench until the reset; the connection limit and a 400 are not the account's fault."""
    now = 1_900_000_000.0
    quota = {
        "type": "error",
        "status": 429,
        "error": {"type": "usage_limit_reached", "resets_at": now + 600},
        "headers": {"x-codex-primary-used-percent": "100.0"},
    }
    outcome = error_frame_outcome(CodexProvider(), quota, now)
    assert outcome is not None
    assert (outcome.kind, outcome.retry_at) == (OutcomeKind.QUOTA, now + 600)
    limit = {
        "type": "error",
        "status": 400,
        "error": {"code": "websocket_connection_limit_reached"},
    }
    assert error_frame_outcome(CodexProvider(), limit, now) is None
    missing = {"type": "error", "status": 400, "error": {"code": "previous_response_not_found"}}
    outcome = error_frame_outcome(CodexProvider(), missing, now)
    assert outcome is not None
    assert outcome.kind is OutcomeKind.CLIENT_ERROR
    server = {"type": "error", "status": 500, "error": {"type": "server_error"}}
    outcome = error_frame_outcome(CodexProvider(), server, now)
    assert outcome is not None
    assert outcome.kind is OutcomeKind.TRANSIENT
