"""The speed comparison: the same load on four targets in one run, so ratios hold on any box.

Targets, all in front of the one fast fake upstream (``bench.upstream``):

* ``direct``: the fake upstream itself (what the load generator and upstream can do);
* ``bare relay``: ``bench.relay``, trio + h11 with nothing else (the floor for our stack);
* ``ccr``: claude-code-router 2.0.0 (Node), skipped with a line when npm is missing;
* ``trio-pool``: the proxy in this tree, two Claude accounts in its pool.

Workloads: small POST /v1/messages at c=16 and 200-event streams at c=64 (wrk, a fixed time
each, every target in turn, the order rotated each round), time to first byte at c=1 (our
Python client, which notes when the first body byte arrives), then 20,000 small requests
through trio-pool for its memory. CPU is read from /proc for each target's process (and
for the upstream, and wrk's from its rusage) around each run.

In the same rounds, on a second trio-pool (``on_codex``: its Codex upstream is the fake one
too), two more 200-event streams at c=64: the Messages stream for a Codex model, translated
both ways (``translated``), and Codex CLI's own request, relayed as it is (``codex stream``).
Both get the same Codex stream, so their CPU difference is what translating costs.
"""

from __future__ import annotations

import http.client
import math
import time
from typing import Any

import attrs
import trio

from bench import procs, wrk
from bench.client import encode_request
from bench.load import LoadResult, Target, run_load
from bench.workloads import (
    CODEX_PATH,
    HOST,
    LONG_STREAM,
    MESSAGES_PATH,
    SHORT_STREAM,
    body_bytes,
    codex_body,
    codex_headers,
    codex_stream_ok,
    control,
    headers,
    probe,
    set_shape,
    small_ok,
    stream_ok,
    translated_body,
)

DIRECT, RELAY, CCR, POOL = "direct", "bare relay", "ccr", "trio-pool"
ON_CODEX = "trio-pool (Codex on the fake upstream)"
SMALL, STREAM = "small", "stream"
TRANSLATED, CODEX_STREAM = "translated", "codex stream"
STREAMS = (STREAM, TRANSLATED, CODEX_STREAM)


@attrs.frozen
class Server:
    """A target: where to send, which process does the work, what credential to send."""

    name: str
    port: int
    child: procs.Child
    credentials: tuple[tuple[str, str], ...]


@attrs.frozen
class ComparePlan:
    rounds: int = 2
    seconds: float = 5.0  # per measured wrk run
    warmup_s: float = 2.0  # Node's JIT needs a few thousand requests
    small_connections: int = 16
    stream_connections: int = 64
    ttfb: int = 300
    warmup_ttfb: int = 30
    soak_first: int = 2000
    soak_total: int = 20000
    # Allowed RSS growth from the first soak reading to the last (pymalloc arenas settle).
    growth_limit_mb: float = 1.0

    def quick(self) -> ComparePlan:
        return attrs.evolve(
            self, rounds=1, seconds=2.0, ttfb=60, warmup_ttfb=10, soak_first=500, soak_total=3000
        )


@attrs.define
class Run:
    """One measured wrk run on one target, with the CPU every process spent in it."""

    result: wrk.WrkResult
    server_cpu_s: float
    upstream_cpu_s: float


@attrs.define
class Comparison:
    plan: ComparePlan
    servers: list[Server]
    upstream: procs.Child
    upstream_port: int
    runs: dict[str, dict[str, list[Run]]] = attrs.field(factory=dict)  # workload -> name -> runs
    ttfb: dict[str, LoadResult] = attrs.field(factory=dict)
    rss: dict[str, dict[str, float]] = attrs.field(factory=dict)  # name -> idle/peak MiB
    soak: dict[str, Any] = attrs.field(factory=dict)
    skipped: dict[str, str] = attrs.field(factory=dict)  # target -> why
    upstream_seen: dict[str, Any] = attrs.field(factory=dict)
    on_codex: Server | None = None  # the trio-pool of the two Codex stream workloads

    # -- figures ----------------------------------------------------------------------

    def total(self, workload: str, name: str) -> tuple[int, float, float, float, float, int]:
        """ok, seconds, server CPU, upstream CPU, wrk CPU, errors over the rounds."""
        runs = self.runs.get(workload, {}).get(name, [])
        return (
            sum(r.result.ok for r in runs),
            sum(r.result.duration_s for r in runs),
            sum(r.server_cpu_s for r in runs),
            sum(r.upstream_cpu_s for r in runs),
            sum(r.result.cpu_s for r in runs),
            sum(r.result.error_count for r in runs),
        )

    def rate(self, workload: str, name: str) -> float:
        ok, seconds, *_ = self.total(workload, name)
        return ok / seconds if seconds else math.nan

    def cpu_per(self, workload: str, name: str, which: str = "server") -> float:
        """CPU seconds per completed request of ``which`` (server, upstream or wrk)."""
        ok, _, server, upstream, load, _ = self.total(workload, name)
        cpu = {"server": server, "upstream": upstream, "wrk": load}[which]
        return cpu / ok if ok else math.nan

    def errors(self, name: str) -> int:
        """Failed requests of one target (wrk's errors and the TTFB client's)."""
        ttfb = self.ttfb.get(name)
        counted = sum(self.total(w, name)[5] for w in (SMALL, *STREAMS))
        return counted + (ttfb.error_count if ttfb else 0)

    def all_errors(self) -> int:
        """Failed requests of the whole comparison, the soak included."""
        errors: int = self.soak.get("errors", 0)
        on_codex = [self.on_codex] if self.on_codex is not None else []
        return errors + sum(self.errors(s.name) for s in [*self.measured(), *on_codex])

    # -- the run ----------------------------------------------------------------------

    def measured(self) -> list[Server]:
        """The targets not skipped."""
        return [s for s in self.servers if s.name not in self.skipped]

    def _wrk(self, server: Server, workload: str, seconds: float) -> Run:
        path, body, sent = request_of(workload, server.credentials)
        lua = self.upstream.log_path.parent / f"wrk-{server.port}-{workload.replace(' ', '-')}.lua"
        if not lua.exists():
            wrk.script(lua, body, sent)
        stream = workload in STREAMS
        connections = self.plan.stream_connections if stream else self.plan.small_connections
        server.child.check_alive()
        cpu0 = procs.tree_cpu_seconds(server.child.pid)
        up0 = procs.cpu_seconds(self.upstream.pid)
        result = wrk.run(
            f"http://{HOST}:{server.port}{path}",
            lua,
            connections=connections,
            duration_s=seconds,
        )
        cpu = procs.tree_cpu_seconds(server.child.pid) - cpu0
        # A target that died under load (its log says why) fails the run right here.
        server.child.check_alive()
        return Run(result, cpu, procs.cpu_seconds(self.upstream.pid) - up0)

    def probe_all(self) -> None:
        """One small and one long stream through each target, checked; a ccr that fails is
        skipped with the reason, any other failure stops the run."""
        set_shape(self.upstream_port, LONG_STREAM)
        for server in self.servers:
            try:
                if not small_ok(probe(server.port, server.credentials, stream=False)):
                    raise RuntimeError("malformed small reply")
                body = probe(server.port, server.credentials, stream=True)
                if not stream_ok(LONG_STREAM.events)(body):
                    raise RuntimeError(f"malformed stream ({len(body)} bytes)")
            except (OSError, RuntimeError, http.client.HTTPException) as exc:
                if server.name != CCR:
                    raise RuntimeError(f"{server.name} failed its probe: {exc}") from exc
                self.skipped[CCR] = f"probe failed: {exc}"
        if self.on_codex is not None:
            # The Codex stream, translated for a Messages client and relayed to Codex CLI.
            for workload, check in (
                (TRANSLATED, stream_ok(LONG_STREAM.events)),
                (CODEX_STREAM, codex_stream_ok(LONG_STREAM.events)),
            ):
                request = request_of(workload, self.on_codex.credentials)
                body = probe(self.on_codex.port, (), stream=True, request=request)
                if not check(body):
                    raise RuntimeError(f"{ON_CODEX}: malformed {workload} ({len(body)} bytes)")

    def run_all(self) -> None:
        plan = self.plan
        time.sleep(1.0)  # idle: started and answering, nothing proxied yet
        for server in self.servers:
            self.rss[server.name] = {"idle": procs.memory_mb(server.child.pid)["VmRSS"]}
        self.probe_all()
        servers = self.measured()
        for n in range(plan.rounds):
            order = servers[n % len(servers) :] + servers[: n % len(servers)]
            for workload, shape in ((SMALL, None), (STREAM, LONG_STREAM)):
                if shape is not None:
                    set_shape(self.upstream_port, shape)
                for server in order:
                    self._measure(server, workload)
            if self.on_codex is not None:
                for workload in (TRANSLATED, CODEX_STREAM)[:: 1 if n % 2 == 0 else -1]:
                    self._measure(self.on_codex, workload)
        set_shape(self.upstream_port, SHORT_STREAM)
        for server in servers:
            self.ttfb[server.name] = trio.run(self._ttfb, server)
        self.run_soak(next(s for s in servers if s.name == POOL))
        time.sleep(0.5)  # a target that dies of the last run's resets dies by now
        for server in servers:
            server.child.check_alive()
            self.rss[server.name]["peak"] = procs.memory_mb(server.child.pid)["VmHWM"]
        self.upstream_seen = _upstream_stats(self.upstream_port)

    def _measure(self, server: Server, workload: str) -> None:
        """A warm-up run, then the measured one."""
        self._wrk(server, workload, self.plan.warmup_s)
        run = self._wrk(server, workload, self.plan.seconds)
        self.runs.setdefault(workload, {}).setdefault(server.name, []).append(run)

    async def _ttfb(self, server: Server) -> LoadResult:
        raw = encode_request(
            "POST",
            "/v1/messages",
            f"{HOST}:{server.port}",
            headers(server.credentials),
            body_bytes(stream=True),
        )
        target = Target(server.name, HOST, server.port, [raw])
        check = stream_ok(SHORT_STREAM.events)
        limit = 60.0
        await run_load(
            target, count=self.plan.warmup_ttfb, concurrency=1, check=check, time_limit_s=limit
        )
        return await run_load(
            target,
            count=self.plan.ttfb,
            concurrency=1,
            check=check,
            time_limit_s=limit,
            keep_ttfb=True,
        )

    def run_soak(self, pool: Server) -> None:
        """Small requests through trio-pool until ``soak_total``; RSS after the first part."""
        plan = self.plan
        per_s = max(100.0, self.rate(SMALL, POOL))
        done = errors = 0
        cpu = 0.0
        readings: list[float] = []
        started = time.perf_counter()
        for _ in range(50):  # bounded: each run is at least a second
            if done >= plan.soak_total:
                break
            want = plan.soak_first if not readings else plan.soak_total - done
            run = self._wrk(pool, SMALL, min(20.0, max(1.0, want / per_s)))
            done += run.result.ok
            errors += run.result.error_count
            cpu += run.server_cpu_s
            readings.append(procs.memory_mb(pool.child.pid)["VmRSS"])
        self.soak = {
            "requests": done,
            "errors": errors,
            "seconds": round(time.perf_counter() - started, 2),
            "cpu_per_request_us": cpu / done * 1e6 if done else math.nan,
            "rss_after_first": readings[0] if readings else math.nan,
            "rss_after_all": readings[-1] if readings else math.nan,
            "rss_readings": readings,
        }


def request_of(
    workload: str, credentials: tuple[tuple[str, str], ...]
) -> tuple[str, bytes, list[tuple[str, str]]]:
    """(path, body, headers) of one workload's request."""
    if workload == TRANSLATED:
        return MESSAGES_PATH, translated_body(), headers(credentials)
    if workload == CODEX_STREAM:
        return CODEX_PATH, codex_body(), codex_headers(credentials)
    return MESSAGES_PATH, body_bytes(stream=workload == STREAM), headers(credentials)


def _upstream_stats(port: int) -> dict[str, Any]:
    stats: dict[str, Any] = control(port, "GET", "/bench/stats")
    return stats
