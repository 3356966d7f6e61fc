"""The workloads, in order: small requests, long streams, time to first byte, the RSS soak.

Each is run DIRECT then THROUGH the proxy with identical request bodies, after a warm-up of
both. The simulator's reply shape is switched through its control endpoint between workloads.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from bench import procs
from bench.client import Connection, encode_json_request, encode_request
from bench.load import Check, LoadResult, Target, run_load

HOST = "127.0.0.1"
MESSAGE_STOP = b'data: {"type":"message_stop"}\n\n'
SMALL_REPLY = {"deltas": 3}  # the simulator's default 35-byte text
LONG_STREAM = {"deltas": 200, "delta_bytes": 200}
# Real streams last seconds, so at concurrency 64 the proxy holds 64 upstream connections.
# Instant simulated streams would let it get by with far fewer (and its connection pool's
# cost grows with its size), so the stream workload first fills the pool with slow streams.
SLOW_STREAM = {**LONG_STREAM, "first_byte_delay_s": 0.3}


OAUTH_BETA = "oauth-2025-04-20"
ANTHROPIC_VERSION = "2023-06-01"


def message_body(*, stream: bool) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": "Say hello."}],
    }


def message_requests(port: int, tokens: list[str], *, stream: bool) -> list[bytes]:
    """The same Claude request, one per bearer token (the proxy gets a placeholder token)."""
    body = message_body(stream=stream)
    out = []
    for token in tokens:
        headers = [
            ("anthropic-version", ANTHROPIC_VERSION),
            ("anthropic-beta", OAUTH_BETA),
            ("authorization", f"Bearer {token}"),
        ]
        out.append(encode_json_request("/v1/messages", f"{HOST}:{port}", headers, body))
    return out


def small_ok(body: bytes) -> bool:
    return body.startswith(b"{") and b'"end_turn"' in body


def stream_ok(deltas: int) -> Check:
    def check(body: bytes) -> bool:
        return body.endswith(MESSAGE_STOP) and body.count(b"event: content_block_delta") == deltas

    return check


def _stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    paths = {
        path: n - before["paths"].get(path, 0)
        for path, n in after["paths"].items()
        if n != before["paths"].get(path, 0)
    }
    return {
        "requests": after["requests"] - before["requests"],
        "connections": after["connections"] - before["connections"],
        "paths": paths,
    }


@attrs.frozen
class Plan:
    small: int = 3000
    streams: int = 1000
    ttfb: int = 300
    small_after: int = 1000  # small requests again, with 64 upstream connections pooled
    soak_first: int = 2000
    soak_total: int = 20000
    warmup_small: int = 300
    warmup_streams: int = 64
    warmup_ttfb: int = 30
    time_limit_s: float = 30.0  # per measured run
    soak_time_limit_s: float = 75.0
    # Allowed RSS growth from the first soak reading to the last (pymalloc arenas settle).
    growth_limit_mb: float = 1.0

    def scaled(self, factor: float) -> Plan:
        def n(value: int) -> int:
            return max(10, math.ceil(value * factor))

        return attrs.evolve(
            self,
            small=n(self.small),
            streams=n(self.streams),
            ttfb=n(self.ttfb),
            small_after=n(self.small_after),
            soak_first=n(self.soak_first),
            soak_total=n(self.soak_total),
            warmup_small=n(self.warmup_small),
            warmup_streams=n(self.warmup_streams),
            warmup_ttfb=n(self.warmup_ttfb),
        )


@attrs.define(eq=False)
class Workloads:
    plan: Plan
    sim: procs.Child
    proxy: procs.Child
    sim_port: int
    proxy_port: int
    small: list[Target] = attrs.field(factory=list)  # [direct, proxy]
    streaming: list[Target] = attrs.field(factory=list)
    loads: dict[str, LoadResult] = attrs.field(factory=dict)
    cpu: dict[str, float] = attrs.field(factory=dict)  # proxy CPU seconds per measured run
    sim_cpu: dict[str, float] = attrs.field(factory=dict)
    rss: dict[str, float] = attrs.field(factory=dict)  # MiB
    # What the simulator saw during each measured run: requests, new connections, paths.
    upstream: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    async def _control(self, method: str, path: str, body: bytes = b"") -> bytes:
        raw = encode_request(method, path, f"{HOST}:{self.sim_port}", [], body)
        conn = Connection(HOST, self.sim_port)
        try:
            reply = await conn.request(raw)
        finally:
            await conn.aclose()
        if reply.status != 200:
            raise RuntimeError(f"simulator refused {method} {path}: {reply.body!r}")
        return reply.body

    async def set_reply(self, fields: Mapping[str, float]) -> None:
        await self._control("POST", "/bench/config", json.dumps(fields).encode())

    async def sim_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = json.loads(await self._control("GET", "/bench/stats"))
        return stats

    async def measure(
        self,
        label: str,
        target: Target,
        count: int,
        concurrency: int,
        check: Check,
        *,
        keep_ttfb: bool = False,
        time_limit_s: float | None = None,
    ) -> LoadResult:
        """One run, with the proxy's and the simulator's CPU and what the simulator saw."""
        self.sim.check_alive()
        self.proxy.check_alive()
        stats0 = await self.sim_stats()
        proxy0, sim0 = procs.cpu_seconds(self.proxy.pid), procs.cpu_seconds(self.sim.pid)
        result = await run_load(
            target,
            count=count,
            concurrency=concurrency,
            check=check,
            time_limit_s=time_limit_s or self.plan.time_limit_s,
            keep_ttfb=keep_ttfb,
        )
        self.cpu[label] = procs.cpu_seconds(self.proxy.pid) - proxy0
        self.sim_cpu[label] = procs.cpu_seconds(self.sim.pid) - sim0
        self.loads[label] = result
        self.upstream[label] = _stats_delta(stats0, await self.sim_stats())
        return result

    async def both(
        self,
        name: str,
        targets: list[Target],
        count: int,
        warmup: int,
        concurrency: int,
        check: Check,
        *,
        keep_ttfb: bool = False,
    ) -> None:
        for target in targets:
            await self.measure(f"warm-up {name} {target.name}", target, warmup, concurrency, check)
        for target in targets:
            await self.measure(
                f"{name} {target.name}", target, count, concurrency, check, keep_ttfb=keep_ttfb
            )

    async def run_all(self) -> None:
        """The workloads, ordered by how many upstream connections the proxy has pooled.

        A connection pool may do work per pooled connection on every request, so each workload
        runs in the state its concurrency would leave in practice: TTFB at concurrency 1 on a
        fresh proxy (1 connection), small requests and the soak at 16, streams at 64, and
        last the small requests again with those 64 connections still pooled.
        """
        plan = self.plan
        with trio.fail_after(300):
            # Idle: started, answered /healthz, nothing proxied yet.
            await trio.sleep(1.0)
            self.rss["idle"] = procs.memory_mb(self.proxy.pid)["VmRSS"]
            await self.set_reply(SMALL_REPLY)
            check = stream_ok(SMALL_REPLY["deltas"])
            await self.both(
                "ttfb", self.streaming, plan.ttfb, plan.warmup_ttfb, 1, check, keep_ttfb=True
            )
            await self.both("small", self.small, plan.small, plan.warmup_small, 16, small_ok)
            await self.soak()
            check = stream_ok(LONG_STREAM["deltas"])
            await self.set_reply(SLOW_STREAM)
            await self.measure("fill upstream pool proxy", self.streaming[1], 64, 64, check)
            await self.set_reply(LONG_STREAM)
            await self.both("stream", self.streaming, plan.streams, plan.warmup_streams, 64, check)
            await self.set_reply(SMALL_REPLY)
            await self.measure(
                "small after streams proxy", self.small[1], plan.small_after, 16, small_ok
            )
            self.rss["peak"] = procs.memory_mb(self.proxy.pid)["VmHWM"]

    async def soak(self) -> None:
        """Many small requests through the proxy; RSS after the first part and at the end."""
        plan, proxy = self.plan, self.small[1]
        runs = [
            ("soak first", plan.soak_first, "after_first"),
            ("soak rest", plan.soak_total - plan.soak_first, "after_all"),
        ]
        for label, count, key in runs:
            await self.measure(
                label, proxy, count, 16, small_ok, time_limit_s=plan.soak_time_limit_s
            )
            self.rss[key] = procs.memory_mb(self.proxy.pid)["VmRSS"]
        self.cpu["soak"] = self.cpu["soak first"] + self.cpu["soak rest"]
