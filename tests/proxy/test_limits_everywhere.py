"""M5: a user's limits count every WebSocket turn, not only the handshake; and the requests
waiting for an account are capped in number and body bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import trio

from tests.http_client import HttpClient
from tests.proxy.conftest import Env
from tests.proxy.test_shared_mode import shared
from tests.proxy.test_websocket import client_headers, url
from tests.testing.test_websocket import connect, create, turn
from trio_pool import clock
from trio_pool.accounts.pool import Lease
from trio_pool.auth.model import UserLimits
from trio_pool.config import Config
from trio_pool.providers.base import Outcome, OutcomeKind

MIB = 1024 * 1024


async def test_every_websocket_turn_counts_against_the_users_rpm(
    make_env: Callable[..., Any],
) -> None:
    """gina (1 request a minute, 1 at once, 1 % share): the warm-up is free, her first turn
    runs, the next 19 on the same socket get Codex's in-band error frame (429) and never
    reach an account; a second socket is refused at the handshake (one stream at once)."""
    env = await make_env(accounts=[("codex", "a"), ("codex", "b")], tweak=shared)
    _, key = await env.services.directory.add_user(
        "gina", UserLimits(rpm=1, streams=1, share_pct=1)
    )
    headers = [*client_headers(), (b"x-trio-pool-key", key.encode())]
    refused: list[dict[str, Any]] = []
    with trio.fail_after(20):
        async with connect(url(env), headers) as ws:
            warm = await turn(ws, create(generate=False))
            assert warm[-1]["type"] == "response.completed"
            first = await turn(ws, create())
            assert first[-1]["type"] == "response.completed"
            for _ in range(19):
                events = await turn(ws, create())
                refused.append(events[-1])
    assert len(refused) == 19
    for frame in refused:
        assert frame["type"] == "error"
        assert frame["status"] == 429
        assert "1 requests per minute" in frame["error"]["message"]
        assert int(frame["headers"]["retry-after"]) >= 1
        assert key not in json.dumps(frame)
    assert sum(a.generations for a in env.state.of("codex")) == 1  # the first turn only


def back_off(env: Env, *, times: int) -> None:
    """claude/a answers request-scoped 429s ``times`` in a row (its backoff doubles)."""
    pool = env.services.pool
    leases = [
        pool.choose("claude", None, clock.now(), exclude=frozenset(), use=True)
        for _ in range(times)
    ]
    for lease in leases:
        assert isinstance(lease, Lease)
        pool.report(lease, Outcome(OutcomeKind.THROTTLED, 429, reason="test"), clock.now())


async def test_requests_waiting_for_an_account_are_capped(make_env: Callable[..., Any]) -> None:
    """Every claude account backing off, 40 concurrent 4 MiB requests: at most 16 MiB of
    bodies wait, the rest get a 429 at once naming the full queue; the waiting ones are
    served when the account is back."""

    def small_queue(config: Config) -> Config:
        routing = attrs.evolve(config.routing, queue_wait_s=10.0, max_queued_bytes=16 * MIB)
        return attrs.evolve(config, routing=routing)

    env = await make_env(accounts=[("claude", "a")], tweak=small_queue)
    services = env.services
    body = json.dumps(
        {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "x" * 4 * MIB}]}
    ).encode()
    headers = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]
    results: list[tuple[int, bytes]] = []
    peak = 0

    async with HttpClient() as client:

        async def send() -> None:
            response = await client.request(
                "POST", env.base + "/v1/messages", headers=headers, content=body
            )
            results.append((response.status, response.content))

        with trio.fail_after(30):
            back_off(env, times=2)  # 2 s, then 4 s: the burst arrives while it lasts
            async with trio.open_nursery() as nursery:

                async def sample() -> None:
                    nonlocal peak
                    while True:
                        peak = max(peak, services.queue.bytes)
                        await trio.sleep(0.001)

                nursery.start_soon(sample)
                async with trio.open_nursery() as burst:
                    for _ in range(40):
                        burst.start_soon(send)
                nursery.cancel_scope.cancel()
    statuses = [status for status, _ in results]
    full = [content for status, content in results if b"queue is full" in content]
    assert len(statuses) == 40
    assert set(statuses) <= {200, 429}
    assert full, statuses
    assert peak <= 16 * MIB
    assert services.queue.requests == 0
    assert services.queue.bytes == 0
