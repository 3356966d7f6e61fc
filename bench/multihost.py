"""Multi-host mode's cost against single-host SQLite, measured in one run (`python -m
bench.multihost`). The same load goes to one `trio-pool serve` with data/state.db and to one
in multi-host mode (PostgreSQL from a throwaway cluster); we report the proxy's CPU per
request (from /proc), time to first byte, and the database's transactions per request
(routing makes no round trip: the transactions are the 1 s sync and the ledger flush)."""

from __future__ import annotations

import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import trio

from bench.client import Connection, encode_json_request
from trio_pool import clock
from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.postgres import PgCluster
from trio_pool.testing.server import serve_simulator, urls
from trio_pool.testing.state import SimState

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
CONCURRENCY = 16
KEY = "YmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtYmVuY2gtMTI="
STARTED = re.compile(r"app\.started listen=http://127\.0\.0\.1:(\d+)")


def big() -> list[SimWindow]:
    return [SimWindow("5h", 5 * 3600.0, 1e9), SimWindow("7d", 7 * 86400.0, 1e9)]


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request(port: int) -> bytes:
    headers = [("anthropic-version", "2023-06-01"), ("authorization", "Bearer x")]
    body = {"model": "claude-sonnet-4-5", "max_tokens": 16, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip
    return encode_json_request("/v1/messages", f"127.0.0.1:{port}", headers, body)


async def start(workdir: Path, sim_base: str, state_url: str | None) -> tuple[trio.Process, int]:
    lines = ['listen = "127.0.0.1:0"', 'pool_dir = "../pool"', 'data_dir = "data"']
    if state_url:
        lines.append(f'state_url = "{state_url}"')
    for provider, values in urls(sim_base).items():
        lines += [f"[{provider}]", *(f'{k} = "{v}"' for k, v in values.items())]
    await trio.Path(workdir).mkdir()
    await trio.Path(workdir / "config.toml").write_text("\n".join(lines) + "\n")
    log = workdir / "log"
    env = {**os.environ, "TRIO_POOL_STATE_KEY": KEY}
    with log.open("wb") as out:
        process = await trio.lowlevel.open_process(
            [sys.executable, "-m", "trio_pool", "serve", "--config", "config.toml"],
            stdout=out, stderr=out, cwd=workdir, env=env,
        )  # fmt: skip
    while not (found := STARTED.search(await trio.Path(log).read_text())):  # noqa: ASYNC110
        await trio.sleep(0.05)  # the child's log is a file: nothing to wait on but polling
    return process, int(found.group(1))


async def load(port: int) -> list[float]:
    ttfb: list[float] = []
    raw = request(port)

    async def worker(count: int) -> None:
        conn = Connection("127.0.0.1", port)
        try:
            for _ in range(count):
                reply = await conn.request(raw)
                assert reply.status == 200, reply.body[:200]
                ttfb.append(reply.ttfb_s)
        finally:
            await conn.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(CONCURRENCY):
            nursery.start_soon(worker, REQUESTS // CONCURRENCY)
    return ttfb


def xacts(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


async def main() -> None:
    cluster = PgCluster.start()
    try:
        url = cluster.create_database("bench")
        with tempfile.TemporaryDirectory(prefix="trio-pool-mh-bench-") as tmp:
            root = Path(tmp)
            sim = SimState.with_accounts(
                [new_account("claude", f"c{i}", now=clock.now(), windows=big()) for i in range(3)]
            )
            write_pool(root / "pool", sim)
            async with trio.open_nursery() as nursery:
                base = await nursery.start(serve_simulator, sim)
                results = {}
                for mode, state_url in (("sqlite", None), ("postgresql", url)):
                    process, port = await start(root / mode, base, state_url)
                    await load(port)  # warm-up
                    before_cpu, before_x = cpu_s(process.pid), xacts(url)
                    started = time.perf_counter()
                    ttfb = await load(port)
                    wall = time.perf_counter() - started
                    cpu = cpu_s(process.pid) - before_cpu
                    results[mode] = (cpu / len(ttfb), statistics.median(ttfb), wall,
                                     xacts(url) - before_x, len(ttfb))  # fmt: skip
                    process.terminate()
                    await process.wait()
                nursery.cancel_scope.cancel()
    finally:
        cluster.stop()
    for mode, (cpu, median_s, wall, x, n) in results.items():
        print(f"{mode:10s} CPU/request {cpu * 1e6:7.0f} us  TTFB p50 {median_s * 1000:6.2f} ms  "
              f"{n / wall:6.0f} req/s  db transactions {x} ({x / n:.3f}/request)")  # fmt: skip
    (sc, st, *_), (pc, pt, *_) = results["sqlite"], results["postgresql"]
    print(f"multi-host / single-host: CPU per request x{pc / sc:.2f}, "
          f"TTFB +{(pt - st) * 1000:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    trio.run(main)
