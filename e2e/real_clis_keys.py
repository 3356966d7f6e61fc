"""Pool keys through the real CLIs: `trio-pool setup CLIENT --write --server URL --key KEY` in a
throwaway HOME with no login of the CLI's own, one turn against `trio-pool demo --shared` (which
refuses requests without an issued key, so a turn that answers proves the key), and a loopback
recorder in front of the demo that checks every request carries the key in a header the proxy
accepts (x-trio-pool-key, Authorization: Bearer, x-api-key, x-goog-api-key).

Called by `e2e/run_real_clis.sh --keys`. Prints PASS/FAIL lines; exit status 1 if any failed.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from real_clis import REPLY, EgressTrap, free_port, healthz, say

CARRIERS = ("x-trio-pool-key", "authorization", "x-api-key", "x-goog-api-key")
HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}


class Recorder:
    """Forwards to the demo (answers buffered), records each request's key-carrying headers;
    refuses WebSocket upgrades with 426 (Codex then falls back to HTTP at once)."""

    def __init__(self, upstream_port: int) -> None:
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def handle_any(self) -> None:
                carried = {k: v for k, v in self.headers.items() if k.lower() in CARRIERS}
                recorder.seen.append((self.command, self.path, carried))
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("upgrade"):
                    self.send_response(426)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_HEAD = handle_any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()


def clean_env(home: Path, trap: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM")}
    env |= {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "NO_COLOR": "1"}
    env |= {"XDG_CACHE_HOME": str(home / ".cache"), "NO_PROXY": "127.0.0.1,localhost"}
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        env[var] = trap
    return env


def run_client(client: str, bin_dir: Path, repo: Path, root: Path, ctx: dict[str, object]) -> bool:
    recorder, trap = ctx["recorder"], ctx["trap"]
    assert isinstance(recorder, Recorder)
    assert isinstance(trap, EgressTrap)
    key = str(ctx["key"])
    home, work = root / f"home-{client}", root / f"work-{client}"
    work.mkdir(parents=True)
    env = clean_env(home, trap.url)
    setup = [sys.executable, "-m", "trio_pool", "setup", client, "--write"]
    setup += ["--server", recorder.url, "--key", key]
    subprocess.run(
        setup, env=env | {"PYTHONPATH": str(repo)}, cwd=work, check=True, stdout=subprocess.DEVNULL
    )
    argv = {
        "codex": [str(bin_dir / "codex"), "exec", "--skip-git-repo-check", "-C", str(work)],
        "claude": [str(bin_dir / "claude"), "-p"],
        "gemini": [str(bin_dir / "gemini"), "-p"],
    }[client] + ["say hi"]
    quiet = {
        "codex": {},
        "claude": {"DISABLE_AUTOUPDATER": "1", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"},
        "gemini": {"GEMINI_CLI_TRUST_WORKSPACE": "true"},  # -p exits 55 in an untrusted dir
    }[client]
    start = len(recorder.seen)
    done = subprocess.run(
        argv, env=env | quiet, cwd=work, stdin=subprocess.DEVNULL, capture_output=True,
        timeout=float(str(ctx["timeout"])),
    )  # fmt: skip
    seen = recorder.seen[start:]
    how = sorted({f"{name}: {'Bearer ' if 'Bearer' in v else ''}KEY" for _, _, h in seen
                  for name, v in h.items() if key in v})  # fmt: skip
    missing = [f"{m} {p}" for m, p, h in seen if not any(key in v for v in h.values())]
    ok = done.returncode == 0 and REPLY.search(done.stdout.decode(errors="replace")) is not None
    ok = ok and bool(seen) and not missing
    say(f"{'PASS' if ok else 'FAIL'} {client} with only `setup --key`: exit={done.returncode}, "
        f"{len(seen)} request(s), key sent as {', '.join(how) or 'nothing'}")  # fmt: skip
    for line in missing:
        say(f"       without the key: {line}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", type=Path, required=True, help="holds codex, claude, gemini")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per CLI turn")
    parser.add_argument("--only", nargs="*", choices=["codex", "claude", "gemini"])
    parser.add_argument("--keys", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="trio-pool-e2e-keys-"))
    port = free_port()
    # Shared mode: the gate checks the key for real; the demo prints its "demo" user's key.
    demo_argv = [
        sys.executable,
        "-m",
        "trio_pool",
        "demo",
        "--shared",
        "--listen",
        f"127.0.0.1:{port}",
    ]
    env = os.environ | {"PYTHONPATH": str(args.repo)}
    with (root / "demo.log").open("wb") as log:
        demo = subprocess.Popen(demo_argv, cwd=args.repo, stdout=log, stderr=log, env=env)
    failed = 0
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                healthz(f"http://127.0.0.1:{port}")
                break
            except OSError:
                if demo.poll() is not None or time.monotonic() > deadline:
                    say(f"FAIL the demo did not start; see {root}/demo.log")
                    return 1
                time.sleep(0.2)
        found = re.search(
            r"CLAUDE_CODE_OAUTH_TOKEN=(tp-[A-Za-z0-9_-]{40})", (root / "demo.log").read_text()
        )
        if found is None:
            say(f"FAIL the demo printed no pool key; see {root}/demo.log")
            return 1
        ctx = {
            "recorder": Recorder(port),
            "trap": EgressTrap(),
            "timeout": args.timeout,
            "key": found.group(1),
        }
        for client in args.only or ["codex", "claude", "gemini"]:
            failed += not run_client(client, args.bin_dir, args.repo, root, ctx)
    finally:
        demo.terminate()
        demo.wait(timeout=10)
    if failed:
        say(f"{failed} failed; output kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
        say("all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
