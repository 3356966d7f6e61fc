"""H1 and H4: a rebinding Host is refused on every route in local mode; pool keys reach only
what the CLIs use; dot-segments and encoded slashes are refused everywhere. Raw sockets, as in
the audit, against a real proxy in front of the simulated upstreams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.proxy.conftest import Env
from tests.proxy.raw_http import send
from tests.proxy.test_shared_mode import shared

MESSAGE = b'{"model":"claude-opus-5-5","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}'
ANTHROPIC = {"anthropic-version": "2023-06-01"}

# The audit's rebinding requests (H1): a page served from the attacker's name.
REBOUND_REQUESTS = [
    ("POST", "/v1/messages", {"content-type": "text/plain", **ANTHROPIC}, MESSAGE),
    ("GET", "/healthz", {}, b""),
    ("GET", "/metrics", {}, b""),
    ("GET", "/backend-api/me", {}, b""),
    ("DELETE", "/backend-api/conversations/abc", {}, b""),
    ("POST", "/v1/responses", {"content-type": "text/plain"}, b'{"model":"gpt-5","input":"hi"}'),
    ("POST", "/v1internal:generateContent", {"content-type": "text/plain"}, b"{}"),
    ("GET", "/api/pool", {}, b""),
    ("GET", "/api/session", {}, b""),
    ("GET", "/", {}, b""),
]
# Names that are not this machine, though some look like it (the audit's held-up list).
FOREIGN_HOSTS = [
    "rebind.attacker.example:{port}",
    "rebind.attacker.example",
    "127.0.0.1.nip.io:{port}",
    "localhost.evil.example",
    "0x7f000001:{port}",
    "2130706433",
    "127.0.0.1:{port}:80",
    "[::ffff:7f00:1]:{port}",
    "[::1]x",
    "evil.test",
]
LOOPBACK_HOSTS = ["localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}", "localhost", "LOCALHOST"]


def port_of(env: Env) -> int:
    return int(env.base.rpartition(":")[2])


def tokens_of(env: Env) -> list[str]:
    found = []
    for account in env.state.accounts.values():
        found += [account.access_token, account.refresh_token]
    return found


def upstream_paths(env: Env) -> list[str]:
    """What the simulator was asked for, apart from the background usage polls."""
    polls = ("/api/oauth/usage", "/wham/usage", ":retrieveUserQuota", ":loadCodeAssist")
    return [target for _, target in env.state.seen if not target.split("?")[0].endswith(polls)]


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
async def test_local_mode_refuses_a_foreign_host_on_every_route(
    make_env: Callable[..., Any], host: str
) -> None:
    """Every route answers 421 to a Host that is not this machine; nothing reaches upstream."""
    env = await make_env()
    host = host.format(port=port_of(env))
    for method, path, headers, body in REBOUND_REQUESTS:
        status, document = await send(env.base, method, path, host=host, headers=headers, body=body)
        assert status == 421, (host, method, path)
        text = repr(document)
        assert "localhost" in text
        assert not any(token in text for token in tokens_of(env))
    assert upstream_paths(env) == []


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_local_mode_serves_loopback_host_names_with_any_port(
    make_env: Callable[..., Any], host: str
) -> None:
    """localhost, 127.0.0.1 and [::1] (any case, any port) still reach the pool."""
    env = await make_env()
    host = host.format(port=port_of(env))
    status, document = await send(env.base, "GET", "/healthz", host=host)
    assert status == 200
    assert document["accounts"]
    status, document = await send(
        env.base,
        "POST",
        "/v1/messages",
        host=host,
        headers={"content-type": "application/json", **ANTHROPIC},
        body=MESSAGE,
    )
    assert status == 200, document


async def test_a_shared_pool_does_not_check_host_since_every_caller_needs_a_key(
    make_env: Callable[..., Any],
) -> None:
    """Shared mode may sit behind any name: Host is not the guard there, the key is."""
    env = await make_env(tweak=shared)
    _, key = await env.services.directory.add_user("ann")
    status, _ = await send(
        env.base,
        "POST",
        "/v1/messages",
        host="pool.example.org",
        headers={"content-type": "application/json", "x-api-key": key, **ANTHROPIC},
        body=MESSAGE,
    )
    assert status == 200


# The audit's H4 requests with a friend's key, and what each must get.
FRIEND_REFUSALS = [
    ("DELETE", "/backend-api/conversations/abc", {}, 404),
    ("GET", "/backend-api/wham/accounts/check", {}, 404),
    ("GET", "/backend-api/wham/settings/user", {}, 404),
    ("POST", "/backend-api/ps/mcp", {}, 404),
    ("GET", "/backend-api/ps/plugins/installed?limit=200", {}, 404),
    ("GET", "/backend-api/me", {}, 404),
    ("DELETE", "/v1/responses", {}, 404),
    ("PUT", "/v1internal:setCodeAssistGlobalUserSetting", {}, 404),
    ("POST", "/v1internal:setCodeAssistGlobalUserSetting", {}, 404),
    ("GET", "/v1internal:generateContent", {}, 404),
    ("DELETE", "/v1internal/operations/x", {}, 404),
    ("GET", "/v1/models/a/b", ANTHROPIC, 404),
    ("GET", "/backend-api/../../etc/passwd", {}, 400),
    ("GET", "/v1/models/../../api/oauth/profile", ANTHROPIC, 400),
    ("DELETE", "/v1internal/operations/../../v1/projects/p", {}, 400),
    ("GET", "/v1internal/operations/..%2f..%2fv1%2fprojects%2fp", {}, 400),
    ("GET", "/v1/models/%2e%2e/%2E%2E/api/oauth/profile", ANTHROPIC, 400),
    ("GET", "/backend-api/codex/./models", {}, 400),
    ("POST", "/v1/messages/..;/x", ANTHROPIC, 404),
    ("GET", "/v1/models/x%5c..%5cy", ANTHROPIC, 400),
]


async def test_a_pool_key_reaches_only_what_the_clis_use(make_env: Callable[..., Any]) -> None:
    """Bob's key: other paths and methods get 404 (dot-segments 400) and never reach
    upstream with the owner's token; the CLIs' own paths still work."""
    env = await make_env(tweak=shared)
    _, key = await env.services.directory.add_user("bob")
    host = env.base.removeprefix("http://")
    for method, path, extra, expected in FRIEND_REFUSALS:
        headers = {"authorization": f"Bearer {key}", **extra}
        status, document = await send(env.base, method, path, host=host, headers=headers)
        assert status == expected, (method, path, document)
        assert not any(token in repr(document) for token in tokens_of(env))
        assert key not in repr(document)
    assert upstream_paths(env) == []
    allowed: list[tuple[str, str, dict[str, str]]] = [
        ("GET", "/v1/models?client_version=0.169.0", {}),  # Codex CLI's, forwarded
        ("GET", "/v1/models", {}),  # another client's: listed by the proxy itself
        ("GET", "/backend-api/wham/usage", {}),
        ("GET", "/v1internal/operations/sim-onboard-a", {}),
    ]
    for method, path, extra in allowed:
        headers = {"authorization": f"Bearer {key}", **extra}
        status, document = await send(env.base, method, path, host=host, headers=headers)
        assert status == 200, (method, path, document)
    # The plain model list and wham/usage are the pool's own answers.
    assert len(upstream_paths(env)) == len(allowed) - 2


async def test_the_owner_keeps_the_whole_backend_api_in_local_mode(
    make_env: Callable[..., Any],
) -> None:
    """Local mode is the owner's own use: backend-api side calls still go upstream."""
    env = await make_env()
    status, _ = await send(env.base, "GET", "/backend-api/wham/accounts/check")
    assert status == 404  # the simulator has no such endpoint: it was asked
    assert "/backend-api/wham/accounts/check" in upstream_paths(env)


@pytest.mark.parametrize(
    "path",
    [
        "/backend-api/../../etc/passwd",
        "/backend-api/x/%2e%2e/y",
        "/backend-api/x%2Fy",
        "/v1/messages/%2E/x",
        "/api/users/lea%2f..%2fmax/keys",
        "/assets/..%2f..%2fconfig.py",
        "/v1internal/operations/..",
    ],
)
async def test_dot_segments_and_encoded_slashes_are_refused_in_local_mode_too(
    make_env: Callable[..., Any], path: str
) -> None:
    """Every mode, every route: 400 before routing, nothing forwarded."""
    env = await make_env()
    status, _ = await send(env.base, "GET", path)
    assert status == 400
    assert upstream_paths(env) == []
