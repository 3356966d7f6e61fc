"""The real Claude Code on a pool of Codex accounts (translation.md §9), offline.

Called by e2e/run_real_clis.sh after e2e/real_clis.py. Claude Code is set up with
`trio-pool setup claude --on codex --write` (a Codex model and small model) and runs
against `trio-pool demo --providers codex --sim-script FILE`: the simulated Codex answers
with scripted turns (reasoning with encrypted_content, function calls, failures) and logs
what each request carried (`sim.codex.request`, --debug), which the checks below read.

1. A tool turn with thinking: Claude Code runs the Bash call Codex asked for, and the next
   request replays reasoning, call and output in order, with the same prompt_cache_key.
2. Parallel calls (one fails), `--continue` (both reasonings and both outputs replayed on the
   pinned account), then `--continue --model claude-opus-5-5` on a Claude account (a second
   demo with Claude accounts too): no Codex thinking reaches the strict simulated Claude.
3. Failures: a 429 and a response.failed right after response.created are failed over
   unseen; a pool out of quota gives Claude Code a 429 with retry-after, and it retries;
   count_tokens is answered without an upstream request.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_clis import EgressTrap, cli_env, fields, free_port, healthz, say

CODEX_MODEL = "gpt-6.1-sol"
STRIP_LIST = ("max_tokens", "max_output_tokens", "temperature", "top_p", "top_k", "metadata")


def call(name: str, call_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"type": "function_call", "name": name, "call_id": call_id, "arguments": arguments}


def reasoning(item_id: str, encrypted: str, summary: str) -> dict[str, Any]:
    return {
        "type": "reasoning",
        "id": item_id,
        "encrypted_content": encrypted,
        "summary": [summary],
    }


def text(value: str) -> dict[str, Any]:
    return {"type": "message", "text": value}


RATE_LIMITED = {"code": "rate_limit_exceeded", "message": "Rate limit reached. Try again in 1s."}
QUOTA = {"status": 429, "type": "usage_limit_reached", "resets_in_seconds": 30}
# Codex-only pool: scenario 1, then the failovers of scenario 3.
SCRIPT_CODEX_ONLY = {
    "codex": {
        "default": [
            {"match": "run echo hi", "items": [reasoning("rs_1", "E1", "plan"),
                                               call("Bash", "call_1", {"command": "echo hi"})]},
            {"match": "call_1", "items": [text("DONE")]},
            {"match": "failover please", "http_error": QUOTA},
            {"match": "failover please", "end": "failed", "error": RATE_LIMITED},
            {"match": "failover please", "items": [text("RECOVERED")]},
            # The stream ends before its first event: failed over before anything is sent.
            {"match": "dropped please", "drop_first_events": 99, "items": [text("NEVER")]},
            {"match": "dropped please", "items": [text("AFTER DROP")]},
        ]
    }
}  # fmt: skip
# Scenario 2, on a pool with Claude accounts too.
SCRIPT_SWITCH = {
    "codex": {
        "default": [
            {"match": "read and run", "items": [
                reasoning("rs_a", "EA", "two calls"),
                call("Read", "call_r", {"file_path": "/nonexistent/trio-pool-e2e.txt"}),
                call("Bash", "call_b", {"command": "echo hi"}),
            ]},
            {"match": "call_b", "items": [reasoning("rs_b", "EB", "done"), text("BOTH DONE")]},
            {"match": "again", "items": [text("AGAIN")]},
        ]
    }
}  # fmt: skip
# Scenario 3's exhaustion, on fresh accounts: each of the three answers 429 once, with a
# reset short enough to keep the step quick (Claude Code waits for retry-after).
RESET_S = 15
SPENT = {"status": 429, "type": "usage_limit_reached", "resets_in_seconds": RESET_S}
SCRIPT_EXHAUSTED = {"codex": {"default": [{"match": "exhaust", "http_error": SPENT}] * 3}}


class Checks:
    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, ok: bool, what: str) -> bool:
        self.failed += not ok
        say(f"{'PASS' if ok else 'FAIL'} {what}")
        return ok


@contextmanager
def demo(
    repo: Path, root: Path, name: str, providers: str, script: dict[str, Any]
) -> Iterator[tuple[str, Path]]:
    """`trio-pool demo --debug --providers P --sim-script F` on a free port: (base, log)."""
    script_path, log = root / f"{name}.script.json", root / f"{name}.log"
    script_path.write_text(json.dumps(script))
    listen = f"127.0.0.1:{free_port()}"
    base = f"http://{listen}"
    argv = [sys.executable, "-m", "trio_pool", "demo", "--debug", "--listen", listen]
    argv += ["--providers", providers, "--sim-script", str(script_path)]
    env = os.environ | {"PYTHONPATH": str(repo)}
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=repo, stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                healthz(base)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the demo did not start; see {log}") from None
                time.sleep(0.2)
        yield base, log
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Claude:
    """One Claude Code home, set up for the pool with `setup claude --on codex`."""

    def __init__(self, binary: Path, root: Path, name: str, base: str, trap: str, repo: Path):
        self.binary, self.base = binary, base
        self.env = cli_env(root, "claude", base, trap, quiet=True)
        # cli_env's homes are per CLI name; one per scenario keeps conversations apart.
        home = root / f"home-{name}"
        if home.exists():
            shutil.rmtree(home)
        (root / "home-claude").rename(home)
        self.env |= {"HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude")}
        self.work = root / "work" / name
        self.work.mkdir(parents=True)
        argv = [sys.executable, "-m", "trio_pool", "setup", "claude", "--on", "codex", "--write"]
        argv += ["--server", base]
        done = subprocess.run(
            argv, env=self.env | {"PYTHONPATH": str(repo)}, cwd=repo, capture_output=True, text=True
        )
        self.setup_ok = done.returncode == 0

    def run(self, log: Path, *args: str, timeout: float = 120) -> tuple[int | None, str, list[str]]:
        """Exit code (None: timed out), stdout, and the demo's log lines of the turn."""
        start = log.stat().st_size
        argv = [str(self.binary), "-p", *args]
        try:
            done = subprocess.run(
                argv, env=self.env, cwd=self.work, stdin=subprocess.DEVNULL,
                capture_output=True, text=True, timeout=timeout,
            )  # fmt: skip
            rc: int | None = done.returncode
            out = done.stdout
        except subprocess.TimeoutExpired as exc:
            rc, out = None, (exc.stdout or b"").decode(errors="replace")  # type: ignore[union-attr]
        time.sleep(0.3)  # request.done is logged after the last byte
        with log.open("rb") as f:
            f.seek(start)
            lines = f.read().decode(errors="replace").splitlines()
        return rc, out, lines


def events(lines: list[str], needle: str) -> list[dict[str, str]]:
    return [fields(line.split(needle, 1)[1]) for line in lines if needle in line]


def requests(lines: list[str]) -> list[dict[str, str]]:
    return events(lines, "sim.codex.request ")


def answered(lines: list[str]) -> list[dict[str, str]]:
    return [e for e in events(lines, "request.done ") if e.get("path") == "/v1/messages"]


def scenario_tool_turn(claude: Claude, log: Path, check: Checks) -> None:
    rc, out, lines = claude.run(log, "run echo hi", "--allowedTools", "Bash")
    check(rc == 0 and "DONE" in out, f"tool turn: exit={rc}, printed {out.strip()[:40]!r}")
    sent = requests(lines)
    if not check(len(sent) == 2, f"tool turn: {len(sent)} Codex request(s), 2 expected"):
        return
    second = sent[1]
    order = second["items"].split(",")[-3:]
    check(
        order == ["reasoning", "function_call", "function_call_output"]
        and second["reasoning"] == "rs_1"
        and second["calls"] == second["outputs"] == "call_1",
        f"tool turn: request 2 replays {order} (reasoning {second['reasoning']}, "
        f"call {second['calls']}, output {second['outputs']})",
    )
    keys = {k for r in sent for k in r["keys"].split(",")}
    check(
        sent[0]["cache_key"] == second["cache_key"] != "-",
        f"tool turn: one prompt_cache_key {second['cache_key'][:13]}…",
    )
    check(not keys & set(STRIP_LIST), f"tool turn: no strip-list key in {sorted(keys)}")
    booked = answered(lines)
    check(
        len(booked) == 2
        and all(b.get("account", "").startswith("codex/") for b in booked)
        and all(int(b.get("tokens_out", "0")) > 0 for b in booked),
        "tool turn: booked on "
        + ", ".join(f"{b.get('account')} ({b.get('tokens_out')} out)" for b in booked),
    )


def scenario_switch(claude: Claude, log: Path, check: Checks) -> None:
    rc, out, lines = claude.run(log, "read and run", "--allowedTools", "Bash,Read")
    check(
        rc == 0 and "BOTH DONE" in out, f"parallel calls: exit={rc}, printed {out.strip()[:40]!r}"
    )
    first = requests(lines)
    rc, out, lines = claude.run(log, "--continue", "again")
    check(rc == 0 and "AGAIN" in out, f"--continue: exit={rc}, printed {out.strip()[:40]!r}")
    sent = requests(lines)
    if not check(len(sent) == 1 and len(first) == 2, "--continue: one Codex request"):
        return
    again = sent[0]
    check(
        again["reasoning"] == "rs_a,rs_b"
        and sorted(again["outputs"].split(",")) == ["call_b", "call_r"]
        and again["error_outputs"] == "1",
        f"--continue: replays reasoning {again['reasoning']}, outputs {again['outputs']} "
        f"({again['error_outputs']} marked as an error)",
    )
    check(
        again["cache_key"] == first[0]["cache_key"] and again["account"] == first[0]["account"],
        f"--continue: same cache key and account ({again['account']})",
    )
    rc, out, lines = claude.run(log, "--continue", "--model", "claude-opus-5-5", "now claude")
    served = [b.get("account", "") for b in answered(lines)]
    check(
        rc == 0 and "claude/" in out and all(s.startswith("claude/") for s in served),
        f"switch to claude-opus-5-5: exit={rc}, served by {served}, printed {out.strip()[-40:]!r}",
    )
    check(
        not any("signature" in line and "Invalid" in line for line in lines),
        "switch: the strict simulated Claude saw no foreign thinking signature",
    )


def scenario_failover(claude: Claude, log: Path, check: Checks) -> None:
    rc, out, lines = claude.run(log, "failover please")
    sent = requests(lines)
    accounts = [r["account"] for r in sent]
    statuses = [b.get("status") for b in answered(lines)]
    check(
        rc == 0 and "RECOVERED" in out and statuses == ["200"],
        f"failover: exit={rc}, client saw {statuses}, printed {out.strip()[:40]!r}",
    )
    check(
        len(sent) == 3 and len(set(accounts)) == 3,
        f"failover: a 429, then response.failed after response.created, then an answer: {accounts}",
    )
    rc, out, lines = claude.run(log, "dropped please")
    accounts = [r["account"] for r in requests(lines)]
    statuses = [b.get("status") for b in answered(lines)]
    check(
        rc == 0 and "AFTER DROP" in out and statuses == ["200"] and len(set(accounts)) == 2,
        f"dropped stream: ended before its first event on {accounts[:1]}, answered by "
        f"{accounts[1:]}; client saw {statuses}, printed {out.strip()[:40]!r}",
    )
    body = json.dumps(
        {"model": CODEX_MODEL, "messages": [{"role": "user", "content": "count me " * 50}]}
    ).encode()
    start = log.stat().st_size
    request = urllib.request.Request(
        f"{claude.base}/v1/messages/count_tokens?beta=true",
        data=body,
        headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        counted = json.load(response)
    time.sleep(0.2)
    with log.open("rb") as f:
        f.seek(start)
        upstream = [line for line in f.read().decode().splitlines() if "sim.codex.request" in line]
    check(
        counted.get("input_tokens", 0) > 0 and not upstream,
        f"count_tokens: {counted} answered locally, {len(upstream)} upstream request(s)",
    )


def post_messages(base: str, content: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One non-streaming /v1/messages for the Codex model: status, headers, JSON body."""
    body = json.dumps(
        {"model": CODEX_MODEL, "max_tokens": 64, "messages": [{"role": "user", "content": content}]}
    ).encode()
    request = urllib.request.Request(
        f"{base}/v1/messages",
        data=body,
        headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), json.load(response)
    except urllib.error.HTTPError as refused:
        return refused.code, dict(refused.headers), json.load(refused)


def scenario_exhausted(claude: Claude, log: Path, check: Checks) -> None:
    # Every account answers its one scripted 429: the pool's answer, in Anthropic's shape.
    status, headers, body = post_messages(claude.base, "exhaust")
    retry_after = headers.get("retry-after", "")
    error = body.get("error", {})
    check(
        status == 429
        and body.get("type") == "error"
        and error.get("type") == "rate_limit_error"
        and retry_after.isdigit()
        and 1 <= int(retry_after) <= RESET_S,
        f"pool exhausted: {status} {error.get('type')} retry-after: {retry_after}",
    )
    # Claude Code now meets the pool-exhausted 429 (every account cooling), waits for
    # retry-after and retries once the reset has passed.
    began = time.monotonic()
    rc, out, lines = claude.run(log, "exhaust", timeout=RESET_S + 90)
    waited = time.monotonic() - began
    refused = [b for b in answered(lines) if b.get("status") == "429"]
    later = [b for b in answered(lines) if b.get("status") == "200"]
    check(bool(refused), f"pool exhausted: Claude Code got {len(refused)} 429(s)")
    check(
        rc == 0 and bool(later) and "codex/" in out,
        f"pool exhausted: Claude Code retried and got an answer after the reset "
        f"(exit={rc}, {len(later)} answer(s), {waited:.0f} s)",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bin-dir", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--keep", action="store_true")
    args, _ = parser.parse_known_args()
    binary = args.bin_dir / "claude"
    root = Path(tempfile.mkdtemp(prefix="trio-pool-e2e-translate-"))
    trap = EgressTrap()
    check = Checks()
    say(f"claude code on codex: logs in {root}")
    with demo(args.repo, root, "codex-only", "codex", SCRIPT_CODEX_ONLY) as (base, log):
        claude = Claude(binary, root, "tools", base, trap.url, args.repo)
        if check(claude.setup_ok, "trio-pool setup claude --on codex --write"):
            settings = json.loads(
                (Path(claude.env["CLAUDE_CONFIG_DIR"]) / "settings.json").read_text()
            )
            check(settings["env"].get("ANTHROPIC_MODEL") == CODEX_MODEL, f"model {CODEX_MODEL}")
            scenario_tool_turn(claude, log, check)
            scenario_failover(
                Claude(binary, root, "failover", base, trap.url, args.repo), log, check
            )
    with demo(args.repo, root, "codex-and-claude", "codex,claude", SCRIPT_SWITCH) as (base, log):
        scenario_switch(Claude(binary, root, "switch", base, trap.url, args.repo), log, check)
    with demo(args.repo, root, "exhausted", "codex", SCRIPT_EXHAUSTED) as (base, log):
        scenario_exhausted(Claude(binary, root, "exhausted", base, trap.url, args.repo), log, check)
    for line in trap.seen:
        say(f"       egress refused by the trap: {line}")
    if check.failed or args.keep:
        say(f"{check.failed} failed; output kept in {root}")
    else:
        say("claude code on codex: all passed")
        shutil.rmtree(root, ignore_errors=True)
    return 1 if check.failed else 0


if __name__ == "__main__":
    sys.exit(main())
