"""`trio-pool demo --shared`: the demo in shared mode, with a key printed for the CLIs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import trio

from tests.http_client import HttpClient
from trio_pool.demo import DEMO_FRIEND_CODE, instructions, start_demo

BODY = b'{"model":"claude-opus-5-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
HEADERS = [("content-type", "application/json"), ("anthropic-version", "2023-06-01")]


async def test_shared_demo_refuses_keyless_requests_and_serves_the_printed_key(
    tmp_path: Path,
) -> None:
    """The printed instructions carry a key that the proxy admits; no key is a 401."""
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running, _state, _sim = await start_demo(nursery, tmp_path, "127.0.0.1:0", shared=True)
            _user, key = await running.services.directory.add_user("demo")
            text = instructions(running.base_url, key)
            assert DEMO_FRIEND_CODE in text
            printed = re.search(r"CLAUDE_CODE_OAUTH_TOKEN=(\S+)", text)
            assert printed is not None
            assert printed.group(1) == key
            url = running.base_url + "/v1/messages"
            async with HttpClient() as http:
                refused = await http.request("POST", url, headers=HEADERS, content=BODY)
                admitted = await http.request(
                    "POST",
                    url,
                    headers=[*HEADERS, ("authorization", f"Bearer {key}")],
                    content=BODY,
                )
            assert refused.status == 401
            assert admitted.status == 200
            nursery.cancel_scope.cancel()


def test_local_demo_instructions_need_no_key() -> None:
    """Without --shared the CLIs are pointed at the demo with a placeholder login."""
    text = instructions("http://127.0.0.1:8989")
    assert "tp-" not in text
    assert "CLAUDE_CODE_OAUTH_TOKEN=pool" in text
    assert "ANTHROPIC_AUTH_TOKEN" not in text  # it would make Claude Code an API user
    assert 'openai_base_url = "http://127.0.0.1:8989/v1"' in text
    assert "model_provider" not in text  # Codex's earlier sessions stay resumable


async def test_demo_plays_a_script_document_through_the_proxy(tmp_path: Path) -> None:
    """`demo --sim-script`'s document reaches the simulator: a Codex turn through the proxy
    is the scripted reasoning + call, and the next one the plain reply again."""
    script = {
        "codex": {
            "default": [
                {
                    "items": [
                        {"type": "reasoning", "id": "rs_1", "encrypted_content": "E1"},
                        {"type": "function_call", "name": "Bash", "arguments": {"command": "ls"}},
                    ]
                }
            ]
        }
    }
    body = json.dumps(
        {
            "model": "gpt-5",
            "instructions": "",
            "store": False,
            "stream": True,
            "input": [{"type": "message", "role": "user", "content": "hi"}],
        }
    ).encode()
    headers = [("content-type", "application/json")]
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            running, state, _sim = await start_demo(nursery, tmp_path, "127.0.0.1:0", script=script)
            url = running.base_url + "/v1/responses"
            async with HttpClient() as http:
                scripted = await http.request("POST", url, headers=headers, content=body)
                plain = await http.request("POST", url, headers=headers, content=body)
            nursery.cancel_scope.cancel()
    assert b'"encrypted_content":"E1"' in scripted.content
    assert b"response.function_call_arguments.delta" in scripted.content
    assert b"this reply came from codex/" in plain.content
    assert state.scripts.played == 1


def test_demo_state_can_hold_one_providers_accounts_only() -> None:
    """`demo --providers codex`: a Codex-only pool (Claude Code on Codex in make e2e)."""
    from trio_pool.testing.pool_files import demo_state

    state = demo_state(0.0, ["codex"])
    assert {a.provider for a in state.accounts.values()} == {"codex"}
    assert len(state.of("codex")) == 3
