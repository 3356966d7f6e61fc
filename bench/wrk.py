"""Driving load with wrk (Debian's package): a Lua script for the POST, JSON out of ``done``.

wrk is C on epoll: one of its threads keeps 64 connections busy for a few microseconds per
response, where a Python load generator on this 2-core box would take as much CPU as the
proxy it measures. The direct runs (wrk straight to the fake upstream) show the headroom:
they run several times faster than any relay, so the relays, not wrk, set the rates.
wrk reports what it completed in a fixed time; a response that is not 2xx/3xx counts as a
``status`` error, and a broken framing as a ``read`` error.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
from pathlib import Path

import attrs

MARKER = "WRK_RESULT "
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")

# done() runs once, after every thread finished: one line of JSON after MARKER.
DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,'
    .. '"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


class WrkMissing(Exception):
    """wrk is not installed and could not be installed."""


@attrs.frozen
class WrkResult:
    requests: int  # responses completed (any status)
    duration_s: float
    errors: dict[str, int]
    p50_ms: float  # whole-response latency
    p99_ms: float
    cpu_s: float  # wrk's own CPU time

    @property
    def ok(self) -> int:
        return self.requests - self.errors.get("status", 0)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0


def ensure_wrk() -> str:
    """The path of wrk, installing Debian's package first when it is missing and we may."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("wrk is missing: apt-get install -y wrk")
        if _apt("install", "-y", "-q", "wrk") != 0:
            _apt("update", "-q")  # a fresh machine may have no package lists yet
            _apt("install", "-y", "-q", "wrk")
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkMissing("the benchmark needs wrk: install it with `apt-get install wrk`")


def _apt(*args: str) -> int:
    command = ["apt-get", *args]
    return subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT).returncode


def _lua_string(text: str) -> str:
    """A Lua long-bracket literal (no escaping inside), with a level that cannot clash."""
    level = 0
    while f"]{'=' * level}]" in text:
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


def script(path: Path, body: bytes, headers: list[tuple[str, str]]) -> Path:
    """Write the Lua script for one POST ``/v1/messages`` shape (same request every time)."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(body.decode())}"]
    # The spaces keep "[" from opening a long bracket.
    lines += [f"wrk.headers[ {_lua_string(n)} ] = {_lua_string(v)}" for n, v in headers]
    path.write_text("\n".join(lines) + "\n" + DONE)
    return path


def parse(stdout: str, cpu_s: float) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(MARKER):
            raw = json.loads(line[len(MARKER) :])
            return WrkResult(
                requests=raw["requests"],
                duration_s=raw["duration_us"] / 1e6,
                errors={kind: raw[kind] for kind in ERROR_KINDS if raw[kind]},
                p50_ms=raw["p50_us"] / 1e3,
                p99_ms=raw["p99_us"] / 1e3,
                cpu_s=cpu_s,
            )
    raise RuntimeError(f"wrk printed no result:\n{stdout[-2000:]}")


def run(url: str, lua: Path, *, connections: int, duration_s: float, threads: int = 1) -> WrkResult:
    """One wrk run; its CPU is read from the rusage of reaped children around it."""
    wrk = ensure_wrk()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(lua),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=300)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr[-2000:]}")
    return parse(done.stdout, cpu_s)
