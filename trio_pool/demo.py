"""`trio-pool demo` and `trio-pool selftest`: the real proxy against simulated upstreams.

Both start the simulator (trio_pool/testing) on a loopback port, write simulated logins into a
temporary pool directory, and run the proxy with its upstream URLs pointed at the simulator.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from trio_pool import clock
from trio_pool.app import Running, serve_proxy, shutdown_signals, wait_for_shutdown_signal
from trio_pool.config import ClaudeConfig, CodexConfig, Config, GeminiConfig, structure_config
from trio_pool.providers.base import PROVIDERS
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import demo_state, write_pool
from trio_pool.testing.server import serve_simulator, urls
from trio_pool.testing.state import SimState
from trio_pool.upstream.client import UpstreamClient

Say = Callable[[str], object]


def demo_config(sim_base: str, workdir: Path, listen: str) -> Config:
    endpoints = urls(sim_base)
    config = structure_config({"listen": listen, "shutdown_grace_s": 2.0}, base_dir=workdir)
    return attrs.evolve(
        config,
        codex=CodexConfig(**endpoints["codex"]),
        claude=ClaudeConfig(**endpoints["claude"]),
        gemini=GeminiConfig(**endpoints["gemini"]),
    )


DEMO_FRIEND_CODE = "demo-friends"


async def start_demo(
    nursery: trio.Nursery,
    workdir: Path,
    listen: str,
    state: SimState | None = None,
    *,
    shared: bool = False,
    script: Any = None,
    providers: Collection[str] | None = None,
) -> tuple[Running, SimState, str]:
    """Simulator + pool files + proxy, started in ``nursery`` (``shared``: with a friend code;
    ``script``: scripted turns for the simulator, testing/scripts.py; ``providers``: only
    their accounts in the pool)."""
    state = state or demo_state(clock.now(), providers)
    if script is not None:
        state.scripts.load(script)
    sim_base: str = await nursery.start(serve_simulator, state)
    await trio.to_thread.run_sync(partial(write_pool, workdir / "pool", state, now=clock.now()))
    config = demo_config(sim_base, workdir, listen)
    if shared:
        config = attrs.evolve(config, friend_code=DEMO_FRIEND_CODE, friend_name="demo pool")
    running: Running = await nursery.start(serve_proxy, config)
    return running, state, sim_base


def instructions(base: str, key: str | None = None) -> str:
    """What to set in each CLI; with ``key`` (shared mode) the key in place of a login."""
    token = key or "pool"
    # Local mode moves Codex's built-in provider (its sessions stay resumable); a key needs a
    # provider of our own (setup/edits.py says why).
    codex = (
        f"""model_provider = "trio-pool"
    chatgpt_base_url = "{base}/backend-api"
    [model_providers.trio-pool]
    name = "trio-pool"
    base_url = "{base}/v1"
    wire_api = "responses"
    requires_openai_auth = false
    http_headers = {{ "x-trio-pool-key" = "{key}" }}
    supports_websockets = true"""
        if key
        else f'openai_base_url = "{base}/v1"\n    chatgpt_base_url = "{base}/backend-api"'
    )
    shared = (
        f"""
Shared mode: friends sign up at {base}/ with the code {DEMO_FRIEND_CODE}. The lines below use
the key of the demo user "demo" (requests without a key get a 401).
"""
        if key
        else ""
    )
    return f"""
trio-pool demo is serving at {base} with simulated accounts (3 per provider).
Dashboard: {base}/
{shared}
Codex CLI: add to ~/.codex/config.toml
    {codex}

Claude Code (CLAUDE_CODE_OAUTH_TOKEN keeps it a subscriber: 1-hour prompt cache):
    ANTHROPIC_BASE_URL={base} CLAUDE_CODE_OAUTH_TOKEN={token} claude

Gemini CLI:
    CODE_ASSIST_ENDPOINT={base} GOOGLE_GENAI_USE_GCA=true GOOGLE_CLOUD_ACCESS_TOKEN={token} gemini

Or with curl (watch the events arrive one by one):
    curl -N {base}/v1/messages -H 'content-type: application/json' -H 'anthropic-version: 2023-06-01' \\
      {f"-H 'authorization: Bearer {key}' " if key else ""}-d '{{"model":"claude-haiku-4-5","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'

Status: trio-pool status --listen {base.removeprefix("http://")}      Stop: Ctrl-C
"""


async def run_demo(
    listen: str,
    say: Say,
    *,
    shared: bool = False,
    script: Any = None,
    providers: Collection[str] | None = None,
) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="trio-pool-demo-") as tmp,
        shutdown_signals() as signals,
    ):
        async with trio.open_nursery() as nursery:
            running, _state, _sim = await start_demo(
                nursery, Path(tmp), listen, shared=shared, script=script, providers=providers
            )
            key = None
            if shared:
                _user, key = await running.services.directory.add_user("demo")
            say(instructions(running.base_url, key))
            await wait_for_shutdown_signal(signals, running)
            nursery.cancel_scope.deadline = (
                trio.current_time() + running.config.shutdown_grace_s + 2
            )


# -- selftest ---------------------------------------------------------------------------------

_SELFTEST_REQUESTS: list[tuple[str, str, str, dict[str, str], dict[str, Any], bytes]] = [
    (
        "codex",
        "POST",
        "/v1/responses",
        {"content-type": "application/json", "session-id": "selftest"},
        {
            "model": "gpt-5",
            "instructions": "",
            "store": False,
            "stream": True,
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}],
                }
            ],
        },
        b"response.completed",
    ),
    (
        "claude",
        "POST",
        "/v1/messages?beta=true",
        {"content-type": "application/json", "anthropic-version": "2023-06-01"},
        {
            "model": "claude-opus-5-5",
            "max_tokens": 32,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        b"message_stop",
    ),
    (
        "gemini",
        "POST",
        "/v1internal:streamGenerateContent?alt=sse",
        {"content-type": "application/json"},
        {
            "model": "gemini-2.5-pro",
            "project": "selftest",
            "request": {
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "session_id": "selftest",
            },
        },
        b'"finishReason"',
    ),
]


async def run_selftest(say: Say) -> int:
    """Serve on loopback port 0, proxy one request per provider; the number of failures."""
    failures = 0
    with tempfile.TemporaryDirectory(prefix="trio-pool-selftest-") as tmp, trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            # One undelayed account per provider: the selftest checks the path, not the pacing.
            now = clock.now()
            state = SimState.with_accounts(new_account(p, "selftest", now=now) for p in PROVIDERS)
            running, _state, _sim = await start_demo(nursery, Path(tmp), "127.0.0.1:0", state)
            async with UpstreamClient() as client:
                for provider, method, path, headers, body, needle in _SELFTEST_REQUESTS:
                    status, _headers, answer = await client.request(
                        method,
                        running.base_url + path,
                        list(headers.items()),
                        json.dumps(body).encode(),
                    )
                    ok = status == 200 and needle in answer
                    failures += not ok
                    say(f"{'ok  ' if ok else 'FAIL'} {provider:<6} {method} {path} -> {status}")
            # Nothing is in flight any more; the simulator would run forever.
            nursery.cancel_scope.cancel()
    say(
        "selftest passed"
        if not failures
        else f"selftest failed: {failures} of {len(_SELFTEST_REQUESTS)}"
    )
    return failures
