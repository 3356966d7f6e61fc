"""Check and measure a frozen trio-pool: size, --version, selftest, demo, start-up time.

Usage: python build/check_binary.py [BINARY] [--runs N] [--strict]
(default dist/trio-pool, 5 runs). Exits 1 when a check fails or the binary is too large;
with --strict also when a time target is missed (CI reports times only: shared runners are noisy).

The binary runs in a clean environment (``env -i`` style: PATH=/usr/bin:/bin, HOME only), so
a Python or venv beside it cannot hide a missing module. Loopback only; every wait is bounded.
Start-up is the time from exec to the first successful TCP connect to ``serve --listen`` with an
empty pool.
"""

# ruff: noqa: T201  (a command-line report: printing is its job)
from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAX_SIZE_MB = 25.0
MAX_START_S = 1.0
MAX_SELFTEST_S = 2.0
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_connectable(port: int, proc: subprocess.Popen[bytes], limit_s: float) -> float:
    """Seconds until 127.0.0.1:port accepts; raises if the process dies or limit_s passes."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return time.perf_counter() - start
        except OSError:
            time.sleep(0.002)
    raise RuntimeError(f"not listening after {limit_s} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def measure_start(binary: Path, runs: int) -> list[float]:
    times = []
    with tempfile.TemporaryDirectory(prefix="trio-pool-start-") as tmp:
        (Path(tmp) / "pool").mkdir()
        config = Path(tmp) / "config.toml"
        config.write_text('pool_dir = "pool"\ndata_dir = "data"\nlog_level = "warning"\n')
        for _ in range(runs):
            port = free_port()
            # An empty CA file and dir force the certifi fallback, so a missing bundle shows.
            env = {**CLEAN_ENV, "SSL_CERT_FILE": "/nonexistent", "SSL_CERT_DIR": "/nonexistent"}
            start = time.perf_counter()
            proc = subprocess.Popen(
                [str(binary), "serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"],
                env=env,
                cwd=tmp,
            )
            try:
                wait_connectable(port, proc, 10.0)
                times.append(time.perf_counter() - start)
                # The port accepts a moment before the SIGTERM handler is installed.
                time.sleep(0.3)
            finally:
                stop(proc)
            if proc.returncode != 0:
                raise RuntimeError(f"serve exited with {proc.returncode} on SIGTERM")
    return times


def check_demo(binary: Path) -> str:
    """Run `demo`, stream one Claude request through it, return the last event type."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="trio-pool-demo-check-") as tmp:
        proc = subprocess.Popen(
            [str(binary), "demo", "--listen", f"127.0.0.1:{port}"],
            env=CLEAN_ENV,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
        )
        try:
            wait_connectable(port, proc, 10.0)
            body = {
                "model": "claude-opus-5-5",
                "max_tokens": 64,
                "stream": True,
                "messages": [{"role": "user", "content": "hi"}],
            }
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request(
                "POST",
                "/v1/messages",
                json.dumps(body),
                {"content-type": "application/json", "anthropic-version": "2023-06-01"},
            )
            response = conn.getresponse()
            events = [
                line.split(b":", 1)[1].strip().decode()
                for line in response.read().splitlines()
                if line.startswith(b"event:")
            ]
            if response.status != 200 or events[-1:] != ["message_stop"]:
                raise RuntimeError(f"demo answered {response.status} with events {events}")
            # The dashboard's files must be inside the binary (PyInstaller datas).
            for path in ("/", "/assets/app.js", "/assets/app.css"):
                conn.request("GET", path)
                page = conn.getresponse()
                if page.status != 200 or not page.read():
                    raise RuntimeError(f"the dashboard's {path} answered {page.status}")
            conn.close()
            return f"{len(events)} events, last {events[-1]}; dashboard served"
        finally:
            stop(proc)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary", nargs="?", default="dist/trio-pool")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--strict", action="store_true", help="fail on missed time targets")
    args = parser.parse_args()
    binary = Path(args.binary).resolve()
    failures = []

    size_mb = binary.stat().st_size / 1e6 if binary.is_file() else 0.0
    print(f"size        {size_mb:.1f} MB (target <= {MAX_SIZE_MB})")
    if binary.is_file() and size_mb > MAX_SIZE_MB:
        failures.append("size")

    version = subprocess.run(
        [str(binary), "--version"], env=CLEAN_ENV, capture_output=True, text=True, timeout=30
    )
    print(f"--version   {version.stdout.strip()} (exit {version.returncode})")
    if version.returncode != 0:
        failures.append("--version")

    start = time.perf_counter()
    selftest = subprocess.run(
        [str(binary), "selftest"], env=CLEAN_ENV, capture_output=True, text=True, timeout=60
    )
    selftest_s = time.perf_counter() - start
    print(
        f"selftest    {selftest_s:.2f} s (exit {selftest.returncode}; target <= {MAX_SELFTEST_S})"
    )
    if selftest.returncode != 0:
        print(selftest.stdout + selftest.stderr, file=sys.stderr)
        failures.append("selftest")
    elif selftest_s > MAX_SELFTEST_S and args.strict:
        failures.append("selftest time")

    print(f"demo        {check_demo(binary)}")

    times = measure_start(binary, args.runs)
    median = statistics.median(times)
    print(
        f"start-up    median {median:.3f} s, min {min(times):.3f}, max {max(times):.3f} "
        f"over {len(times)} runs (target <= {MAX_START_S})"
    )
    if median > MAX_START_S and args.strict:
        failures.append("start-up time")

    print("binary checks passed" if not failures else f"FAILED: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
