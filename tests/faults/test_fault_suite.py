"""The fault suite: resets, hang-ups, bad input, cancellations and SIGTERMs at random points
of refreshes and streams, against a real ``trio-pool serve``. Seeded, bounded in count and
time; it counts lost tokens, lost processes and leaked descriptors, and all must be 0.

``TRIO_POOL_FAULT_ITERATIONS`` sets the count (default 300; ``make bench`` runs more);
``TRIO_POOL_FAULT_SEED`` the seed; ``TRIO_POOL_FAULT_REPORT`` a file for the tally (JSON).
SIGKILL is not among the faults: a process killed between the token endpoint's answer and
the write cannot keep a token anywhere (kill -9 during the write itself is
tests/state/test_processes.py: the file is never torn).
"""

from __future__ import annotations

import json
import os
import random
import signal
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import attrs
import pytest
import trio

from tests.conftest import StartServe
from tests.http_client import HttpClient
from tests.procs import Served, write_config
from tests.rawclient import (
    claude_request,
    connect,
    read_until,
    reset,
    status_of,
    websocket_handshake,
)
from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry, read_account_file
from trio_pool.demo import demo_config
from trio_pool.errors import CredentialsError
from trio_pool.state.store import StateStore
from trio_pool.testing.faults import SimConfig
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState
from trio_pool.upstream.client import Timeouts, UpstreamClient

pytestmark = pytest.mark.faults

ITERATIONS = int(os.environ.get("TRIO_POOL_FAULT_ITERATIONS", "300"))
SEED = int(os.environ.get("TRIO_POOL_FAULT_SEED", "20260115"))
LANES = 3  # clients at once: refreshes and streams overlap
RESTARTS = 3  # SIGTERMs (each followed by a restart) spread over the run
ACCOUNTS = [("claude", "a"), ("claude", "b"), ("codex", "a")]

BAD_INPUTS = [
    b"NOT HTTP\r\n\r\n",
    b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: -1\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n"
    b"content-length: 4\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
    b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
    b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx: " + b"a" * 70_000 + b"\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 99999999999\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
    b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nbad header\r\n\r\n",
]


@attrs.define
class Tally:
    iterations: int = 0
    faults: Counter[str] = attrs.field(factory=Counter)
    bad_inputs: int = 0
    processes_lost: int = 0
    tokens_lost: int = 0
    fds_leaked: int = 0
    refreshes: int = 0

    def document(self) -> dict[str, object]:
        return {
            "seed": SEED,
            "iterations": self.iterations,
            "faults_injected": sum(self.faults.values()),
            "faults": dict(sorted(self.faults.items())),
            "bad_inputs": self.bad_inputs,
            "refreshes_at_the_endpoint": self.refreshes,
            "processes_lost": self.processes_lost,
            "tokens_lost": self.tokens_lost,
            "fds_leaked": self.fds_leaked,
        }


def lost_tokens(pool_dir: Path, state: SimState) -> int:
    """Accounts whose pool file does not hold the simulator's current refresh token."""
    lost = 0
    for account in state.accounts.values():
        path = pool_dir / account.provider / f"{account.name}.json"
        try:
            _doc, credentials = read_account_file(path, account.provider)
        except CredentialsError:
            lost += 1
            continue
        lost += credentials.refresh_token != account.refresh_token
    return lost


class Faults:
    """One lane's client actions; each injects one fault."""

    def __init__(
        self, rng: random.Random, state: SimState, tally: Tally, forcing: trio.Lock
    ) -> None:
        self.rng = rng
        self.state = state
        self.tally = tally
        # One forced 401 at a time across lanes: a second one landing on the retry after
        # the refresh would be a real auth failure, and the account would cool down.
        self.forcing = forcing

    def pick(self) -> Callable[[int], Awaitable[None]]:
        return self.rng.choice(
            [
                self.reset_during_refresh,
                self.hang_up_during_refresh,
                self.reset_mid_stream,
                self.hang_up_mid_stream,
                self.bad_input,
                self.reset_mid_websocket,
                self.reset_fresh,
            ]
        )

    def force_refresh(self) -> None:
        """The next request of a Claude account gets a 401, so it refreshes. One at a time:
        a second 401 right after the refresh would be a real auth failure (a cool-down)."""
        key = self.rng.choice([f"{p}/{n}" for p, n in ACCOUNTS if p == "claude"])
        if not self.state.account(key).forced:
            self.state.force(key, "unauthorized")

    async def reset_during_refresh(self, port: int) -> None:
        async with self.forcing:
            self.force_refresh()
            stream = await connect(port)
            await stream.send_all(claude_request(stream=False))
            await trio.sleep(self.rng.uniform(0, 0.06))
            await reset(stream)
            await trio.sleep(0.04)  # the refresh (0.03 s) ends before the next force
        self.tally.faults["reset_during_refresh"] += 1

    async def hang_up_during_refresh(self, port: int) -> None:
        async with self.forcing:
            self.force_refresh()
            stream = await connect(port)
            await stream.send_all(claude_request(stream=False))
            await trio.sleep(self.rng.uniform(0, 0.06))
            await stream.send_eof()
            await stream.aclose()
            await trio.sleep(0.04)
        self.tally.faults["hang_up_during_refresh"] += 1

    async def reset_mid_stream(self, port: int) -> None:
        stream = await connect(port)
        await stream.send_all(claude_request())
        with trio.move_on_after(self.rng.uniform(0, 0.1)):
            await read_until(stream, b"message_stop")
        await reset(stream)
        self.tally.faults["reset_mid_stream"] += 1

    async def hang_up_mid_stream(self, port: int) -> None:
        stream = await connect(port)
        await stream.send_all(claude_request())
        with trio.move_on_after(self.rng.uniform(0, 0.1)):
            await read_until(stream, b"message_stop")
        await stream.send_eof()
        await stream.aclose()
        self.tally.faults["hang_up_mid_stream"] += 1

    async def bad_input(self, port: int) -> None:
        data = self.rng.choice(BAD_INPUTS)
        if self.rng.random() < 0.3:
            data = bytes(self.rng.getrandbits(8) for _ in range(self.rng.randint(1, 300)))
        stream = await connect(port)
        try:
            await stream.send_all(data)
            with trio.move_on_after(self.rng.uniform(0, 0.05)):
                await stream.receive_some(65536)
        except trio.BrokenResourceError:
            pass
        await (reset(stream) if self.rng.random() < 0.5 else stream.aclose())
        self.tally.bad_inputs += 1

    async def reset_mid_websocket(self, port: int) -> None:
        stream = await connect(port)
        await stream.send_all(websocket_handshake())
        with trio.move_on_after(self.rng.uniform(0, 0.05)):
            await read_until(stream, b"\r\n\r\n")
            await stream.send_all(b"\x81\xe4" + os.urandom(4) + b"abc")
        await reset(stream)
        self.tally.faults["reset_mid_websocket"] += 1

    async def reset_fresh(self, port: int) -> None:
        stream = await connect(port)
        await trio.sleep(self.rng.uniform(0, 0.02))
        await reset(stream)
        self.tally.faults["reset_fresh"] += 1


async def settle_fds(served: Served, baseline: int) -> int:
    """Descriptors above ``baseline`` still open after up to 5 s of quiet."""
    with trio.move_on_after(5):
        while served.fds() > baseline:
            await trio.sleep(0.05)
    return max(0, served.fds() - baseline)


async def whole_stream(base: str) -> None:
    """One streaming request read to its end (whatever its status)."""
    async with HttpClient() as client:
        await client.request(
            "POST",
            base + "/v1/messages",
            headers=[("anthropic-version", "2023-06-01"), ("content-type", "application/json")],
            content=claude_request().split(b"\r\n\r\n", 1)[1],
        )


async def warm_up(served: Served) -> int:
    """A whole stream on every lane at once, so that the upstream pool holds as many idle
    connections as the lanes can ever leave it; then the process's descriptor count."""
    async with trio.open_nursery() as nursery:
        for _ in range(LANES):
            nursery.start_soon(whole_stream, served.base)
    assert await status_of(served.base) == 200
    await trio.sleep(0.2)
    return served.fds()


async def test_faults_at_random_points_lose_no_token_process_or_descriptor(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """ITERATIONS faults (resets, hang-ups, bad input during refreshes and streams) from
    three clients at once, with SIGTERM-and-restart in between: 0 tokens, processes and
    descriptors lost."""
    rng = random.Random(SEED)
    now = clock.now()
    state = SimState.with_accounts(new_account(p, n, now=now) for p, n in ACCOUNTS)  # type: ignore[arg-type]
    state.config = SimConfig(deltas=20, event_delay_s=0.004, token_delay_s=0.03)
    sim_base = await nursery.start(serve_simulator, state)
    await trio.to_thread.run_sync(lambda: write_pool(tmp_path / "pool", state, now=now))
    write_config(tmp_path, sim_base, shutdown_grace_s=0.5)
    tally = Tally()
    forcing = trio.Lock()
    lanes = [Faults(random.Random(rng.random()), state, tally, forcing) for _ in range(LANES)]
    restart_at = sorted(rng.sample(range(1, max(2, ITERATIONS)), min(RESTARTS, ITERATIONS - 1)))
    with trio.fail_after(30 + ITERATIONS * 0.25):
        served = await serve_process(tmp_path)
        baseline = await warm_up(served)
        done = 0
        while done < ITERATIONS:
            batch = min(LANES, ITERATIONS - done)
            async with trio.open_nursery() as clients:
                for lane in lanes[:batch]:
                    clients.start_soon(lane.pick(), served.port)
            done += batch
            tally.iterations = done
            if not served.alive:
                tally.processes_lost += 1
                served = await serve_process(tmp_path)
                baseline = await warm_up(served)
            if restart_at and done >= restart_at[0]:
                restart_at.pop(0)
                tally.fds_leaked += await settle_fds(served, baseline)
                # SIGTERM at a random point of whatever is in flight (a refresh, maybe).
                if not any(a.forced for a in state.accounts.values()):
                    lanes[0].force_refresh()
                stream = await connect(served.port)
                await stream.send_all(claude_request(stream=False))
                await trio.sleep(rng.uniform(0, 0.05))
                served.process.send_signal(signal.SIGTERM)
                tally.processes_lost += await served.process.wait() != 0
                await stream.aclose()
                tally.faults["sigterm"] += 1
                tally.tokens_lost += lost_tokens(tmp_path / "pool", state)
                served = await serve_process(tmp_path)
                baseline = await warm_up(served)
        tally.fds_leaked += await settle_fds(served, baseline)
        assert await status_of(served.base) == 200
        served.process.send_signal(signal.SIGTERM)
        tally.processes_lost += await served.process.wait() != 0
    tally.tokens_lost += lost_tokens(tmp_path / "pool", state)
    tally.refreshes = sum(a.refreshes for a in state.accounts.values())
    report(tally, "serve")
    assert "credentials.refresh.rejected" not in served.text
    assert (tally.processes_lost, tally.tokens_lost, tally.fds_leaked) == (0, 0, 0), tally


async def test_refresh_callers_cancelled_at_random_points_lose_no_token(
    tmp_path: Path, nursery: trio.Nursery
) -> None:
    """ITERATIONS refreshes whose callers are cancelled at a random moment (before, during
    or after the token call), with the service itself cancelled and restarted now and then:
    every rotated token reaches the file."""
    rng = random.Random(SEED + 1)
    now = clock.now()
    state = SimState.with_accounts([new_account("claude", "a", now=now)])
    sim_base = await nursery.start(serve_simulator, state)
    write_pool(tmp_path / "pool", state, now=now)
    config = demo_config(sim_base, tmp_path, "127.0.0.1:0")
    store = await StateStore.open(config.data_dir)
    client = UpstreamClient(Timeouts(connect_s=5, first_byte_s=10, idle_s=10))
    tally = Tally()
    try:
        with trio.fail_after(30 + ITERATIONS * 0.1):
            pool = Pool(config.routing)
            registry = AccountRegistry(config, pool)
            registry.scan()
            refresher = Refresher(config, registry, pool, client, state=store)
            account = registry.accounts["claude/a"]
            for _ in range(ITERATIONS):
                state.config = SimConfig(token_delay_s=rng.uniform(0, 0.02))
                async with trio.open_nursery() as service:
                    await service.start(refresher.serve)
                    with trio.move_on_after(rng.uniform(0, 0.03)):
                        await refresher.refresh(account, reason="fault", stale=account.credentials)
                    tally.faults["caller_cancelled"] += 1
                    if rng.random() < 0.2:
                        tally.faults["service_cancelled"] += 1  # mid-refresh, maybe
                    else:
                        while refresher.in_flight():
                            await trio.sleep(0.001)
                    service.cancel_scope.cancel()
                account.refresh_retry_at = 0.0
                tally.iterations += 1
    finally:
        await client.aclose()
        await store.aclose()
    tally.tokens_lost = lost_tokens(tmp_path / "pool", state)
    tally.refreshes = state.account("claude/a").refreshes
    report(tally, "refresh")
    assert tally.refreshes > ITERATIONS // 4  # the faults did land on refreshes
    assert tally.tokens_lost == 0, tally


def report(tally: Tally, name: str) -> None:
    path = os.environ.get("TRIO_POOL_FAULT_REPORT")
    if path:
        with open(path, "a") as file:
            file.write(json.dumps({"suite": name, **tally.document()}) + "\n")
