"""WebSocket figures: Codex turns per second and the latency the proxy adds to one frame.

Both are measured DIRECT to the simulator (with an account's own credentials) and THROUGH the
proxy (which puts a pooled account's credentials on its upstream socket), like the HTTP runs:

* turns/s: ``concurrency`` sockets, each sending ``response.create`` turns back to back and
  reading every frame (rate limits + the 11 Responses events) up to ``response.completed``;
* frame round trip: one socket on the realtime echo path, one small frame at a time. The
  proxy relays each round trip twice, so the added per-frame latency is half the difference
  of the medians.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import attrs
import trio
import trio_websocket

from bench import procs
from bench.report import Metric
from trio_pool.upstream.websocket import release

HOST = "127.0.0.1"
TURN = json.dumps(
    {
        "type": "response.create",
        "model": "gpt-5",
        "instructions": "",
        "store": False,
        "input": [],
        "stream": True,
    }
)
COMPLETED = '"response.completed"'


@attrs.frozen
class WsPlan:
    turns: int = 2000
    concurrency: int = 8
    echoes: int = 2000
    warmup: int = 100

    def scaled(self, factor: float) -> WsPlan:
        def n(value: int) -> int:
            return max(10, math.ceil(value * factor))

        return WsPlan(n(self.turns), self.concurrency, n(self.echoes), n(self.warmup))


@attrs.define
class WsRun:
    ok: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_s: list[float] = attrs.field(factory=list)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else math.nan

    def median_ms(self) -> float:
        return statistics.median(self.latencies_s) * 1e3 if self.latencies_s else math.nan

    def p99_ms(self) -> float:
        if len(self.latencies_s) < 2:
            return math.nan
        return statistics.quantiles(self.latencies_s, n=100)[98] * 1e3


def codex_login(pool_dir: Path) -> list[tuple[bytes, bytes]]:
    """One simulated Codex account's own handshake credentials (for the direct runs)."""
    path = sorted((pool_dir / "codex").glob("*.json"))[0]
    tokens = json.loads(path.read_text())["tokens"]
    return [
        (b"authorization", f"Bearer {tokens['access_token']}".encode()),
        (b"chatgpt-account-id", tokens["account_id"].encode()),
    ]


def headers(login: list[tuple[bytes, bytes]], session: str) -> list[tuple[bytes, bytes]]:
    beta = (b"openai-beta", b"responses_websockets=2026-02-06")
    return [*login, beta, (b"originator", b"codex_exec"), (b"session-id", session.encode())]


async def _socket_turns(url: str, extra: list[tuple[bytes, bytes]], count: int, run: WsRun) -> None:
    async with trio_websocket.open_websocket_url(url, extra_headers=extra) as ws:
        try:
            for _ in range(count):
                await ws.send_message(TURN)
                while COMPLETED not in str(await ws.get_message()):
                    pass
                run.ok += 1
        finally:
            await release(ws)


async def turns(url: str, login: list[tuple[bytes, bytes]], count: int, concurrency: int) -> WsRun:
    run = WsRun()
    share, extra = divmod(count, concurrency)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for i in range(concurrency):
            n = share + (1 if i < extra else 0)
            nursery.start_soon(_socket_turns, url, headers(login, f"bench-{i}"), n, run)
    run.elapsed_s = time.perf_counter() - started
    return run


async def echoes(url: str, login: list[tuple[bytes, bytes]], count: int) -> WsRun:
    run = WsRun()
    started = time.perf_counter()
    async with trio_websocket.open_websocket_url(url, extra_headers=headers(login, "echo")) as ws:
        try:
            for i in range(count):
                sent = time.perf_counter()
                await ws.send_message(f'{{"type":"input_audio_buffer.append","n":{i}}}')
                await ws.get_message()
                run.latencies_s.append(time.perf_counter() - sent)
                run.ok += 1
        finally:
            await release(ws)
    run.elapsed_s = time.perf_counter() - started
    return run


async def measure(
    plan: WsPlan,
    sim: procs.Child,
    proxy: procs.Child,
    sim_port: int,
    proxy_port: int,
    pool_dir: Path,
) -> tuple[list[Metric], dict[str, Any]]:
    """The WebSocket metrics (direct vs proxy) and the raw runs for the JSON document."""
    login = codex_login(pool_dir)
    pooled = [(b"authorization", b"Bearer pool")]
    where = {
        "direct": (f"ws://{HOST}:{sim_port}/backend-api/codex", login),
        "proxy": (f"ws://{HOST}:{proxy_port}/v1", pooled),
    }
    runs: dict[str, WsRun] = {}
    cpu: dict[str, float] = {}
    with trio.fail_after(300):
        for base, creds in where.values():
            await turns(f"{base}/responses", creds, plan.warmup, plan.concurrency)
            await echoes(f"{base}/realtime", creds, plan.warmup)
        for label, (base, creds) in where.items():
            before = procs.cpu_seconds(proxy.pid)
            runs[f"ws turns {label}"] = await turns(
                f"{base}/responses", creds, plan.turns, plan.concurrency
            )
            cpu[label] = procs.cpu_seconds(proxy.pid) - before
            runs[f"ws echo {label}"] = await echoes(f"{base}/realtime", creds, plan.echoes)
    td, tp = runs["ws turns direct"], runs["ws turns proxy"]
    ed, ep = runs["ws echo direct"], runs["ws echo proxy"]
    per_turn_us = cpu["proxy"] / tp.ok * 1e6 if tp.ok else math.nan
    metrics = [
        Metric(f"WebSocket turns/s (c={plan.concurrency})", "turns/s", td.rate, tp.rate),
        Metric("proxy CPU per WebSocket turn (12 frames)", "µs", None, per_turn_us),
        Metric("WS frame round trip p50 (c=1)", "ms", ed.median_ms(), ep.median_ms()),
        Metric("WS frame round trip p99 (c=1)", "ms", ed.p99_ms(), ep.p99_ms()),
        Metric(
            "added latency per WS frame p50 (one relay)",
            "ms",
            None,
            (ep.median_ms() - ed.median_ms()) / 2,
        ),
    ]
    document = {
        label: {"ok": r.ok, "elapsed_s": round(r.elapsed_s, 4), "per_s": round(r.rate, 2)}
        for label, r in runs.items()
    }
    return metrics, document
