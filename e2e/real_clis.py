"""Run the real Codex CLI, Claude Code and Gemini CLI against `trio-pool demo`, offline.

Called by e2e/run_real_clis.sh, which installs the CLIs. Each CLI gets a throwaway HOME, a clean
environment (no inherited credentials) and HTTPS_PROXY pointing at a loopback trap that refuses
and records every attempt to reach the internet. Prints PASS/FAIL/WARN lines and the request
sequence the proxy logged for every turn; exit status 1 if anything failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

REPLY = re.compile(r"Hello from the trio-pool demo: this reply came from (\w+/\w+)\.")
FIELD = re.compile(r"(\w+)=(\S+)")
# The proxy's log lines worth showing: each request, and the WebSocket outcomes.
EVENT = re.compile(r"\b(request\.done|ws\.open|ws\.closed|ws\.refused) (.*)$")
# The simulator's note on each Claude model request: the cache TTLs it asked for.
CLAUDE_REQUEST = re.compile(r"\bsim\.claude\.request (.*)$")
SESSION_ID = re.compile(r"^session id: (\S+)", re.MULTILINE)


def say(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@attrs.frozen
class Turn:
    name: str  # e.g. "codex turn 1"
    provider: str
    argv: list[str]
    # Run `trio-pool setup <provider> --write` before this turn (the turns before it stand for
    # the user's sessions from before set-up).
    setup_before: bool = False


@attrs.frozen
class Result:
    turn: Turn
    rc: int | None  # None: timed out
    seconds: float
    account: str | None  # the account named in the reply on stdout
    events: list[tuple[str, dict[str, str]]]  # the proxy's log events and fields, in order
    egress: list[str]  # refused attempts to reach the internet
    session: str | None  # the session id Codex printed on stderr
    claude_requests: list[dict[str, str]]  # the simulator's sim.claude.request fields


class EgressTrap:
    """A loopback HTTP(S) proxy that answers 403 to everything and remembers what was asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self._sock.accept()
            with conn:
                conn.settimeout(5)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
                    self.seen.append(first)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                except OSError:
                    pass


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def fake_jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}.{part({'sig': 'fake'})}"


def codex_home(path: Path, *, quiet: bool) -> None:
    """An auth.json with fake JWTs and a config.toml with only the quiet settings: the proxy is
    set by ``trio-pool setup codex --write`` between the turns (``Turn.setup_before``)."""
    path.mkdir(parents=True)
    now = int(time.time())
    claims = {
        "exp": now + 10 * 365 * 86400,  # far future: no proactive refresh
        "iat": now,
        "email": "e2e@example.invalid",
        "https://api.openai.com/auth": {
            "chatgpt_account_id": "acct-FAKE-0001",
            "chatgpt_plan_type": "plus",
            "chatgpt_user_id": "user-FAKE",
        },
    }
    tokens = {
        "id_token": fake_jwt(claims),
        "access_token": fake_jwt(claims),
        "refresh_token": "rt_FAKE_e2e",
        "account_id": "acct-FAKE-0001",
    }
    auth = {
        "auth_mode": "chatgpt",
        "OPENAI_API_KEY": None,
        "tokens": tokens,
        "last_refresh": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    (path / "auth.json").write_text(json.dumps(auth))
    top = "check_for_update_on_startup = false\n" if quiet else ""
    tail = '[analytics]\nenabled = false\n[otel]\nmetrics_exporter = "none"\n' if quiet else ""
    (path / "config.toml").write_text(f"{top}\n{tail}")


def run_setup(provider: str, env: dict[str, str], base: str, repo: Path) -> bool:
    """``trio-pool setup PROVIDER --write --server BASE`` in the CLI's environment."""
    argv = [sys.executable, "-m", "trio_pool", "setup", provider, "--write", "--server", base]
    setup_env = env | {"PYTHONPATH": str(repo)}
    done = subprocess.run(argv, env=setup_env, cwd=repo, capture_output=True, text=True)
    if done.returncode != 0:
        say(f"       setup failed: {done.stderr.strip()}")
    return done.returncode == 0


def cli_env(root: Path, name: str, base: str, trap: str, *, quiet: bool) -> dict[str, str]:
    """A clean environment: PATH and locale only, throwaway homes, the trap as proxy.

    ``quiet`` adds the telemetry and update-check switches; without it each CLI gets exactly
    the README's settings (whatever it then tries to send outside is refused by the trap).
    """
    home = root / f"home-{name}"
    for sub in ("", ".config", ".cache", ".local/share", ".local/state", ".gemini"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "TERM")}
    env |= {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "NO_COLOR": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        env[var] = trap
    if name.startswith("codex"):
        env["CODEX_HOME"] = str(home / ".codex")
        codex_home(home / ".codex", quiet=quiet)
    elif name == "claude":
        # As the README says: the token keeps Claude Code a subscriber (1-hour cache).
        env |= {
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": base,
            "CLAUDE_CODE_OAUTH_TOKEN": "pool",
        }
        if quiet:
            env |= {
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "DISABLE_AUTOUPDATER": "1",
                "DISABLE_TELEMETRY": "1",
                "DISABLE_ERROR_REPORTING": "1",
            }
    else:
        if quiet:
            settings = {
                "privacy": {"usageStatisticsEnabled": False},
                "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
                "telemetry": {"enabled": False},
            }
            (home / ".gemini/settings.json").write_text(json.dumps(settings))
        env |= {
            "GEMINI_CLI_HOME": str(home),
            "CODE_ASSIST_ENDPOINT": base,
            "GOOGLE_GENAI_USE_GCA": "true",
            "GOOGLE_CLOUD_ACCESS_TOKEN": "pool",
            "GEMINI_CLI_TRUST_WORKSPACE": "true",  # -p exits 55 in an untrusted directory
        }
    return env


def turns(bin_dir: Path, work: Path, base: str) -> dict[str, list[Turn]]:
    codex, claude, gemini = (str(bin_dir / n) for n in ("codex", "claude", "gemini"))
    cx = [codex, "exec", "--skip-git-repo-check", "-C", str(work)]
    # Turn 1 stands for a session from before set-up: Codex's built-in provider, which only the
    # command line points at the demo (offline, it cannot reach OpenAI). Then `setup --write`;
    # turn 2 must resume that same session.
    before = ["-c", f'openai_base_url="{base}/v1"', "-c", f'chatgpt_base_url="{base}/backend-api"']
    return {
        "codex": [
            Turn("codex turn 1 (before setup)", "codex", [*cx, *before, "say hi"]),
            Turn(
                "codex turn 2 (after setup)",
                "codex",
                [*cx, "resume", "--last", "say hi again"],
                setup_before=True,
            ),
        ],
        "claude": [
            Turn("claude turn 1", "claude", [claude, "-p", "say hi"]),
            Turn("claude turn 2", "claude", [claude, "-p", "--continue", "say hi again"]),
        ],
        "gemini": [
            Turn("gemini turn 1", "gemini", [gemini, "-p", "say hi"]),
            Turn("gemini turn 2", "gemini", [gemini, "--resume", "latest", "-p", "say hi again"]),
        ],
        "codex-ws": [Turn("codex websocket turn", "codex", [*cx, "say hi"], setup_before=True)],
    }


def fields(text: str) -> dict[str, str]:
    """key=value pairs of a log line; the first value of a repeated key wins."""
    found: dict[str, str] = {}
    for key, value in FIELD.findall(text):
        found.setdefault(key, value)
    return found


def healthz(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        data: dict[str, Any] = json.load(response)
        return data


def pins(base: str, provider: str) -> int:
    """Live conversation pins of one provider's accounts."""
    accounts = healthz(base)["accounts"]
    return sum(a["pinned_conversations"] for a in accounts if a["provider"] == provider)


def run_turn(turn: Turn, env: dict[str, str], cwd: Path, out: Path, ctx: Context) -> Result:
    log_start, trap_start = ctx.log.stat().st_size, len(ctx.trap.seen)
    started = time.monotonic()
    stem = out / turn.name.replace(" ", "-")
    with stem.with_suffix(".stdout").open("wb") as so, stem.with_suffix(".stderr").open("wb") as se:
        proc = subprocess.Popen(
            turn.argv, stdin=subprocess.DEVNULL, stdout=so, stderr=se, env=env, cwd=cwd,
            start_new_session=True,
        )  # fmt: skip
        try:
            rc: int | None = proc.wait(timeout=ctx.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = None
    seconds = time.monotonic() - started
    time.sleep(0.3)  # the proxy logs request.done after the last byte; let it land
    with ctx.log.open("rb") as f:
        f.seek(log_start)
        lines = f.read().decode(errors="replace").splitlines()
    events = [(m.group(1), fields(m.group(2))) for m in map(EVENT.search, lines) if m]
    claude = [fields(m.group(1)) for m in map(CLAUDE_REQUEST.search, lines) if m]
    match = REPLY.search(stem.with_suffix(".stdout").read_text(errors="replace"))
    account = match.group(1) if match else None
    session = SESSION_ID.search(stem.with_suffix(".stderr").read_text(errors="replace"))
    return Result(
        turn,
        rc,
        seconds,
        account,
        events,
        ctx.trap.seen[trap_start:],
        session.group(1) if session else None,
        claude,
    )


@attrs.define
class Context:
    log: Path
    trap: EgressTrap
    timeout: float
    quiet: bool
    repo: Path
    failed: int = 0

    def verdict(self, ok: bool, what: str, warn: bool = False) -> None:
        self.failed += not ok and not warn
        say(f"{'PASS' if ok else 'WARN' if warn else 'FAIL'} {what}")


def report(result: Result, ctx: Context) -> bool:
    ok = result.rc == 0 and result.account is not None
    if result.account is not None and not result.account.startswith(result.turn.provider + "/"):
        ok = False
    rc = "timeout" if result.rc is None else str(result.rc)
    ctx.verdict(
        ok, f"{result.turn.name}: exit={rc} {result.seconds:.1f}s reply from {result.account}"
    )
    for kind, r in result.events:
        if kind == "request.done":
            fields = (r.get(k, "-") for k in ("method", "path", "status", "account", "ms"))
            say("       {} {} {} {} {}ms".format(*fields))
        else:
            say(f"       {kind} " + " ".join(f"{k}={v}" for k, v in r.items()))
    for line in result.egress:
        say(f"       egress refused by the trap: {line}")
    return ok


def websocket_verdict(result: Result, ctx: Context) -> None:
    """Over the WebSocket, or refused and then over HTTP; each refusal Codex retries costs time."""
    refused: dict[str, str] = {}  # conn -> status
    opened = posts = 0
    for kind, r in result.events:
        if kind == "ws.refused" or (
            kind == "request.done" and r.get("method") == "GET" and r.get("path") == "/v1/responses"
        ):
            refused[r.get("conn", str(len(refused)))] = r.get("status", "?")
        opened += kind == "ws.open"
        posts += (
            kind == "request.done"
            and r.get("method") == "POST"
            and r.get("path") == "/v1/responses"
        )
    statuses = ",".join(sorted(set(refused.values()))) or "-"
    if opened and not posts:
        ctx.verdict(True, f"codex websocket: the turn went over {opened} WebSocket(s)")
    else:
        # Codex retries a 404 (or 5xx) upgrade 6 times, about 6 s, before it falls back to
        # HTTP; a 426 makes it fall back at once (real-clients.md §4).
        ctx.verdict(
            len(refused) <= 1,
            f"codex websocket: {len(refused)} refused upgrade(s) (status {statuses}), "
            f"{opened} opened, then {posts} HTTP POST(s)",
            warn=True,
        )


def cache_verdict(results: list[Result], ctx: Context) -> None:
    """Claude Code as a subscriber asks for the 1-hour prompt cache on every breakpoint."""
    requests = [r for result in results for r in result.claude_requests]
    ttls = [t for r in requests for t in r.get("cache_ttls", "-").split(",") if t != "-"]
    ok = bool(ttls) and all(t == "1h" for t in ttls)
    ctx.verdict(
        ok,
        f"claude prompt cache: {len(requests)} request(s), cache_control ttls {sorted(set(ttls))}",
    )


def run_cli(name: str, plan: list[Turn], base: str, ctx: Context, root: Path) -> None:
    env = cli_env(root, name, base, ctx.trap.url, quiet=ctx.quiet)
    work = root / "work" / name
    work.mkdir(parents=True)
    provider = plan[0].provider
    pins_before = pins(base, provider)
    results = []
    for turn in plan:
        if turn.setup_before:
            ok = run_setup(turn.provider, env, base, ctx.repo)
            ctx.verdict(ok, f"{name}: trio-pool setup {turn.provider} --write")
            if not ok:
                return
        results.append(run_turn(turn, env, work, root, ctx))
        if not report(results[-1], ctx):
            return
    if name == "codex-ws":
        websocket_verdict(results[0], ctx)
        return
    if name == "codex":
        resumed = results[0].session is not None and results[0].session == results[1].session
        ctx.verdict(
            resumed,
            f"codex resume after setup: session {results[0].session} -> {results[1].session}",
        )
    if name == "claude":
        cache_verdict(results, ctx)
    first, second = results[0].account, results[1].account
    new_pins = pins(base, provider) - pins_before
    if first == second:
        ctx.verdict(new_pins == 1, f"{name} sticky: both turns on {first}, {new_pins} new pin")
    else:
        # One pin for both turns: the proxy saw one conversation and moved it on purpose
        # (sticky = "auto" leaves an account that is clearly more used than another).
        ctx.verdict(
            False,
            f"{name} sticky: moved {first} -> {second}, {new_pins} new pin(s)",
            warn=new_pins == 1,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", type=Path, required=True, help="holds codex, claude, gemini")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per CLI turn")
    parser.add_argument("--only", nargs="*", choices=["codex", "claude", "gemini", "codex-ws"])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--readme-only",
        action="store_true",
        help="exactly the README's settings: no telemetry or update-check switches",
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="trio-pool-e2e-"))
    ctx = Context(
        log=root / "demo.log",
        trap=EgressTrap(),
        timeout=args.timeout,
        quiet=not args.readme_only,
        repo=args.repo,
    )
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    demo_argv = [sys.executable, "-m", "trio_pool", "demo", "--debug", "--listen", listen]
    env = os.environ | {"PYTHONPATH": str(args.repo)}
    with ctx.log.open("wb") as log_file:
        demo = subprocess.Popen(demo_argv, cwd=args.repo, stdout=log_file, stderr=log_file, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                healthz(base)
                break
            except OSError:
                if demo.poll() is not None or time.monotonic() > deadline:
                    say(f"FAIL the demo did not start; see {ctx.log}")
                    return 1
                time.sleep(0.2)
        say(f"demo at {base}; logs and CLI output in {root}")
        for name, plan in turns(args.bin_dir, root / "work", base).items():
            if not args.only or name in args.only:
                run_cli(name, plan, base, ctx, root)
        status = [sys.executable, "-m", "trio_pool", "status", "--listen", listen]
        shown = subprocess.run(status, cwd=args.repo, env=env, capture_output=True, text=True)
        say(shown.stdout.rstrip())
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(timeout=10)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait()
    if ctx.failed or args.keep:
        say(f"{ctx.failed} failed; output kept in {root}")
    else:
        say("all passed")
        shutil.rmtree(root, ignore_errors=True)
    return 1 if ctx.failed else 0


if __name__ == "__main__":
    sys.exit(main())
