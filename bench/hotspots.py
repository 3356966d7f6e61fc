"""``python -m bench --profile small|stream``: where trio-pool's CPU goes under one workload.

trio-pool runs as in the comparison (fast fake upstream, two Claude accounts, log level
info) while wrk drives the workload, and py-spy samples it from outside: no profiler inside
the process, so the proportions are those of the real run (py-spy pauses the proxy for each
sample, a few microseconds 200 times a second: ``--nonblocking`` tore stacks). Idle samples (the event loop waiting in epoll) are
left out by py-spy, so the shares are shares of busy CPU. The raw stacks are kept in
``bench/results/profile-<workload>.txt`` (py-spy's collapsed format, for flamegraph tools).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import trio

from bench import procs, wrk
from bench.client import encode_request
from bench.compare import STREAM
from bench.report import RESULTS
from bench.targets import proxy_ready, wait_accepting, wait_until_answers
from bench.workloads import (
    HOST,
    LONG_STREAM,
    PLACEHOLDER,
    body_bytes,
    headers,
    set_shape,
)

RATE_HZ = 200
# Leaves that are waits py-spy counts as busy: a trio thread-cache worker blocked on its
# job lock (its work runs in callees, so as a leaf it is always waiting).
IDLE_LEAVES = frozenset({"WorkerThread._work (trio/_core/_thread_cache.py)"})
TOP = 25
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
# Where a leaf frame's file belongs (after trio_pool/<subpackage>), first match wins.
AREAS = (
    ("/h11/", "h11"),
    ("/trio/", "trio"),
    ("/logging/", "logging"),
    ("/sqlite3/", "sqlite3"),
    ("/json/", "json"),
    ("/attr/", "attrs"),
    ("/cattrs/", "cattrs"),
)


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def frame_name(frame: str) -> tuple[str, str]:
    """(function with file, file) of one collapsed-stack frame, without the line number."""
    match = FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    path = match["file"]
    short = path.split("site-packages/")[-1]
    if "/trio_pool/" in short:  # a checkout's absolute path: keep it from the package on
        short = "trio_pool/" + short.split("/trio_pool/", 1)[1]
    return f"{match['function']} ({short})", short


def area(path: str) -> str:
    if "trio_pool/" in path:
        parts = path.split("trio_pool/", 1)[1].split("/")
        return "trio_pool/" + (parts[0] if len(parts) > 1 else parts[0].removesuffix(".py"))
    for needle, name in AREAS:
        if needle in f"/{path}":
            return name
    return "other (stdlib, C calls)" if path else "native"


def summarize(raw: str, top: int = TOP) -> list[str]:
    """The top frames by own samples and by inclusive samples, and the share per area."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = idle = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(f) for f in stack.split(";") if "(" in f]
        if not frames:
            continue
        if frames[-1][0] in IDLE_LEAVES:
            idle += count
            continue
        total += count
        own[frames[-1][0]] += count
        areas[area(frames[-1][1])] += count
        # Inclusive time only for our own frames: they show where a request's path goes.
        for name in {name for name, path in frames if path.startswith("trio_pool/")}:
            inclusive[name] += count
    if not total:
        return ["py-spy recorded no busy samples"]

    def block(title: str, counter: Counter[str], n: int) -> list[str]:
        lines = [title]
        lines += [f"  {c / total * 100:5.1f}%  {name}" for name, c in counter.most_common(n)]
        return lines

    return [
        f"{total} busy samples ({idle} of idle thread-cache workers left out)",
        *block("by area (the leaf frame's package):", areas, 12),
        *block(f"top {top} by own time:", own, top),
        *block(f"top {top} trio_pool frames by inclusive time (with callees):", inclusive, top),
    ]


def record(pid: int, seconds: float, port: int, workload: str, workdir: Path) -> tuple[str, float]:
    """py-spy on ``pid`` while wrk drives ``workload``; the raw stacks and wrk's rate."""
    spy = py_spy()
    assert spy is not None
    out = workdir / "profile.txt"
    lua = wrk.script(
        workdir / "profile.lua", body_bytes(stream=workload == STREAM), headers(PLACEHOLDER)
    )
    command = [spy, "record", "--pid", str(pid), "--format", "raw", "--output", str(out)]
    command += ["--rate", str(RATE_HZ), "--duration", str(round(seconds))]
    url = f"http://{HOST}:{port}/v1/messages"
    wrk.run(url, lua, connections=64 if workload == STREAM else 16, duration_s=2)  # warm-up
    with subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as spying:
        result = wrk.run(
            url, lua, connections=64 if workload == STREAM else 16, duration_s=seconds + 1
        )
        _, err = spying.communicate(timeout=60)
    if not out.exists():
        raise RuntimeError(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    return out.read_text(), result.rate


def main(workload: str, *, quick: bool, accounts: int, tree: Path = procs.ROOT) -> int:
    if py_spy() is None:
        print("py-spy is missing: .venv/bin/python -m pip install --group bench")
        return 2
    seconds = 5.0 if quick else 15.0
    with tempfile.TemporaryDirectory(prefix="trio-pool-profile-") as tmp:
        workdir = Path(tmp)
        sim_port, upstream_port, proxy_port = (procs.free_port() for _ in range(3))
        children = [procs.start_simulator(workdir, sim_port, accounts)]
        try:
            control = encode_request("POST", "/bench/config", f"{HOST}:{sim_port}", [], b"{}")
            trio.run(wait_until_answers, children[0], sim_port, control, 30.0)
            children.append(procs.start_upstream(workdir, upstream_port))
            wait_accepting(children[-1], upstream_port, 30)
            children.append(
                procs.start_proxy(
                    workdir,
                    proxy_port,
                    f"http://{HOST}:{sim_port}",
                    claude_base=f"http://{HOST}:{upstream_port}",
                    tree=tree,
                )
            )
            trio.run(proxy_ready, children[-1], proxy_port)
            if workload == STREAM:
                set_shape(upstream_port, LONG_STREAM)
            raw, rate = record(children[-1].pid, seconds, proxy_port, workload, workdir)
        finally:
            for child in reversed(children):
                child.stop()
    kept = RESULTS.parent / f"profile-{workload}.txt"
    kept.parent.mkdir(parents=True, exist_ok=True)
    kept.write_text(raw)
    print(f"\ntrio-pool under the {workload} workload, sampled by py-spy at {RATE_HZ} Hz for")
    print(f"{seconds:g} s ({rate:,.0f}/s while sampled; raw stacks in {kept}):")
    print("\n".join(summarize(raw)))
    return 0
