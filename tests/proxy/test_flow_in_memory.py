"""The request flow over memory streams on the mock clock: failover, queueing, a hang-up.

No socket: the front handler and the simulated upstreams each run behind an
HTTPConnection on ``trio.testing`` memory streams (tests/proxy/memory.py), so a wait for
a cooldown or a ten-second stream costs no real time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import attrs
import h11
import trio
import trio.testing

from tests.proxy.memory import MemoryProxy, request, start_memory_proxy
from trio_pool import clock
from trio_pool.config import AccountSettings, Config
from trio_pool.testing.faults import SimConfig

MESSAGES = json.dumps(
    {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}
).encode()
CLAUDE = (("content-type", "application/json"), ("anthropic-version", "2023-06-01"))


def a_before_b(config: Config) -> Config:
    """a is always chosen before b (a lower priority tier), so the failover is certain."""
    accounts = {"claude/a": AccountSettings(priority=0), "claude/b": AccountSettings(priority=1)}
    return attrs.evolve(config, accounts=accounts)


def queue_wait(seconds: float) -> Callable[[Config], Config]:
    def tweak(config: Config) -> Config:
        return attrs.evolve(config, routing=attrs.evolve(config.routing, queue_wait_s=seconds))

    return tweak


def state_of(proxy: MemoryProxy, key: str) -> str:
    return {v.name: v.state for v in proxy.services.pool.accounts(clock.now())}[key]


async def test_a_quota_429_fails_over_before_the_client_hears_anything(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """a answers its quota 429; the client gets b's answer, a cools down, the row says so."""
    proxy = await start_memory_proxy(
        nursery, tmp_path, [("claude", "a"), ("claude", "b")], a_before_b
    )
    a, b = proxy.sim.account("claude/a"), proxy.sim.account("claude/b")
    a.force("quota", 5)
    with trio.fail_after(60):
        status, body = await proxy.post("/v1/messages", MESSAGES, *CLAUDE)
    assert status == 200
    assert proxy.sim.config.text in body.decode()
    assert (a.requests, a.generations, b.generations) == (1, 0, 1)
    assert state_of(proxy, "claude/a") == "cooling"
    (row,) = proxy.services.live.recent(1)
    assert (row["account"], row["attempts"], row["status"]) == ("claude/b", 2, 200)
    assert row["failures"][0].startswith("claude/a: ")


async def test_a_busy_pool_queues_the_request_until_the_backoff_ends(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The only account is throttled: the request waits for its backoff, then it serves."""
    proxy = await start_memory_proxy(nursery, tmp_path, [("claude", "a")], queue_wait(60.0))
    a = proxy.sim.account("claude/a")
    a.force("throttle", 1)
    started = trio.current_time()
    with trio.fail_after(120):
        status, _body = await proxy.post("/v1/messages", MESSAGES, *CLAUDE)
    assert status == 200
    assert (a.requests, a.generations) == (2, 1)
    assert trio.current_time() > started  # it slept (on the mock clock) for the backoff
    assert proxy.services.queue.requests == 0  # its place in the wait queue was given back


async def test_a_busy_pool_past_the_queue_wait_answers_429_at_once(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With no wait allowed the client gets a 429 naming the account, and no sleep."""
    proxy = await start_memory_proxy(nursery, tmp_path, [("claude", "a")], queue_wait(0.0))
    proxy.sim.account("claude/a").force("quota", 5)
    started = trio.current_time()
    with trio.fail_after(60):
        status, body = await proxy.post("/v1/messages", MESSAGES, *CLAUDE)
    assert status == 429
    assert "claude/a" in json.loads(body)["error"]["message"]
    assert trio.current_time() == started


async def test_a_client_hang_up_mid_stream_ends_the_lease_and_is_counted(
    nursery: trio.Nursery, tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The client leaves after the head of a slow stream: the upstream request is
    cancelled, the account is free again, and the request's row is written as answered."""
    proxy = await start_memory_proxy(nursery, tmp_path, [("claude", "a")])
    a = proxy.sim.account("claude/a")
    a.config = SimConfig(event_delay_s=30.0, deltas=5)
    streaming = json.loads(MESSAGES) | {"stream": True}
    body = json.dumps(streaming).encode()
    client = proxy.client()
    with trio.fail_after(60):
        await client.send(
            request("POST", "/v1/messages", body, *CLAUDE), h11.Data(data=body), h11.EndOfMessage()
        )
        while not isinstance(event := client.h11.next_event(), h11.Response):
            if event is h11.NEED_DATA:
                client.h11.receive_data(bytes(await client.stream.receive_some(65536)))
        assert event.status_code == 200
        await client.stream.aclose()
        hung_up = trio.current_time()
        while not proxy.services.live.recent(1):
            await trio.sleep(0.01)
    assert trio.current_time() - hung_up < 30.0  # not at the stream's next event
    (view,) = proxy.services.pool.accounts(clock.now())
    assert (view.in_flight, view.state) == (0, "ok")
    (row,) = proxy.services.live.recent(1)
    assert (row["account"], row["status"]) == ("claude/a", 200)
