"""The simulator's WebSocket mode against a real trio-websocket client."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio_websocket

from tests.testing.sim_helpers import Sim
from trio_pool.testing.accounts import SimAccount, SimWindow
from trio_pool.testing.websocket import ws_sim
from trio_pool.upstream.websocket import close_rejected, release

BETA = ("openai-beta", "responses_websockets=2026-02-06")


def ws_url(sim: Sim, path: str = "/backend-api/codex/responses") -> str:
    return sim.base.replace("http://", "ws://") + path


def auth(account: SimAccount) -> list[tuple[bytes, bytes]]:
    return [
        (b"authorization", f"Bearer {account.access_token}".encode()),
        (b"chatgpt-account-id", account.account_id.encode()),
        (BETA[0].encode(), BETA[1].encode()),
    ]


@asynccontextmanager
async def connect(
    url: str, headers: list[tuple[bytes, bytes]]
) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    """A test client socket whose TCP stream is surely closed at the end."""
    try:
        async with trio_websocket.open_websocket_url(url, extra_headers=headers) as ws:
            try:
                yield ws
            finally:
                await release(ws)
    except trio_websocket.ConnectionRejected as exc:
        await close_rejected(exc)
        raise


def create(**extra: Any) -> str:
    turn = {"type": "response.create", "model": "gpt-5", "instructions": "", "store": False}
    return json.dumps({**turn, "input": [], **extra})


async def turn(ws: trio_websocket.WebSocketConnection, message: str) -> list[dict[str, Any]]:
    """Send one message; the events up to response.completed or an error frame."""
    await ws.send_message(message)
    events = []
    while True:
        event = json.loads(await ws.get_message())
        events.append(event)
        if event["type"] in ("response.completed", "error"):
            return events


async def test_turns_chain_on_one_socket(sim: Sim) -> None:
    """A warm-up, then a turn chained to it by previous_response_id, each a full reply."""
    account = sim.account("codex")
    with trio.fail_after(10):
        async with connect(ws_url(sim), auth(account)) as ws:
            warm = await turn(ws, create(generate=False))
            assert [e["type"] for e in warm] == [
                "codex.rate_limits",
                "response.created",
                "response.completed",
            ]
            assert warm[-1]["response"]["output"] == []
            events = await turn(ws, create(previous_response_id=warm[-1]["response"]["id"]))
    types = [e["type"] for e in events]
    assert types[:3] == ["codex.rate_limits", "response.created", "response.in_progress"]
    assert types.count("response.output_text.delta") == 3
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    assert text == sim.state.config.text
    assert events[-1]["response"]["usage"]["output_tokens"] > 0
    assert account.generations == 1
    assert account.last_header("openai-beta") == BETA[1]


async def test_previous_response_from_another_socket_is_not_found(sim: Sim) -> None:
    """Chaining state is socket-scoped: an id from another socket gets a 400 error frame."""
    account = sim.account("codex")
    with trio.fail_after(10):
        async with connect(ws_url(sim), auth(account)) as ws:
            first = (await turn(ws, create()))[-1]["response"]["id"]
        async with connect(ws_url(sim), auth(account)) as ws:
            (error,) = await turn(ws, create(previous_response_id=first))
    assert error["status"] == 400
    assert error["error"]["code"] == "previous_response_not_found"


@pytest.mark.parametrize(("fault", "status"), [("quota", 429), ("unauthorized", 401)])
async def test_handshake_refusals_are_http_answers(sim: Sim, fault: str, status: int) -> None:
    """Forced quota and auth faults refuse the upgrade with the HTTP path's status and body."""
    account = sim.account("codex")
    account.force(fault, 1)  # type: ignore[arg-type]
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as caught:
        async with connect(ws_url(sim), auth(account)):
            pass
    assert caught.value.status_code == status
    body = json.loads(caught.value.body or b"{}")
    if fault == "quota":
        assert body["error"]["type"] == "usage_limit_reached"
        names = {k.decode().lower() for k, _ in caught.value.headers}
        assert "x-codex-primary-used-percent" in names


async def test_quota_error_frame_carries_status_and_headers(sim: Sim) -> None:
    """An injected quota fault answers the next response.create with the real error frame."""
    account = sim.account("codex")
    ws_sim(sim.state).force_frame(account.key, "quota")
    with trio.fail_after(10):
        async with connect(ws_url(sim), auth(account)) as ws:
            (error,) = await turn(ws, create())
    assert error["status"] == 429
    assert error["error"]["type"] == "usage_limit_reached"
    assert "x-codex-primary-used-percent" in error["headers"]


async def test_full_window_refuses_the_upgrade(sim: Sim) -> None:
    """An account over its quota cannot open a socket: 429 usage_limit_reached."""
    account = sim.account("codex")
    account.windows = [SimWindow("5h", 5 * 3600, capacity=1, used=1)]
    with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionRejected) as caught:
        async with connect(ws_url(sim), auth(account)):
            pass
    assert caught.value.status_code == 429


async def test_connection_limit_ends_the_socket(sim: Sim, autojump_clock: trio.abc.Clock) -> None:
    """After the connection limit the socket gets websocket_connection_limit_reached and closes."""
    account = sim.account("codex")
    ws_sim(sim.state).connection_limit_s = 60 * 60
    async with connect(ws_url(sim), auth(account)) as ws:
        await turn(ws, create())
        error = json.loads(await ws.get_message())
        with pytest.raises(trio_websocket.ConnectionClosed):
            await ws.get_message()
    assert error["error"]["code"] == "websocket_connection_limit_reached"
    assert ws_sim(sim.state).open_sockets == 0


async def test_realtime_path_echoes(sim: Sim) -> None:
    """The generic socket on /realtime echoes text and binary messages."""
    account = sim.account("codex")
    url = ws_url(sim, "/backend-api/codex/realtime?model=gpt-realtime")
    with trio.fail_after(10):
        async with connect(url, auth(account)) as ws:
            await ws.send_message('{"type":"session.update"}')
            await ws.send_message(b"\x00\x01")
            assert await ws.get_message() == '{"type":"session.update"}'
            assert await ws.get_message() == b"\x00\x01"
