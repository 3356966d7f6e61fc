"""L5, L6 and M5's key cap over real HTTP: a plain user sees only their own usage and
requests; limits are bounded numbers; a user holds at most MAX_KEYS_PER_USER live keys."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import trio

from tests.proxy.raw_http import host_port
from tests.proxy.test_shared_mode import ask_claude, call, join, shared
from trio_pool.auth.model import MAX_KEYS_PER_USER
from trio_pool.config import Config

TOKEN = "admin-token-0123456789abcdef"
BEARER = {"authorization": f"Bearer {TOKEN}"}
CSRF = {"x-trio-pool": "1"}


def with_token(config: Config) -> Config:
    return attrs.evolve(shared(config), admin_token=TOKEN)


async def test_a_plain_user_sees_only_their_own_usage_and_requests(
    make_env: Callable[..., Any],
) -> None:
    """ann and bob both send requests; ann's cookie gets only ann's rows, the admin all."""
    env = await make_env(tweak=with_token)
    ann_key, ann = await join(env, "ann")
    bob_key, _ = await join(env, "bob")
    for key in (ann_key, bob_key, bob_key):
        await trio.to_thread.run_sync(ask_claude, env, key)
    services = env.services
    assert services.ledger is not None
    assert services.state is not None
    await services.ledger.flush(services.state)
    _, usage, _ = await call(env, "GET", "/api/usage?hours=24&by=user", headers={"cookie": ann})
    assert [s["label"] for s in usage["series"]] == ["ann"]
    assert usage["totals"]["requests"] == 1
    _, requests, _ = await call(env, "GET", "/api/requests?limit=50", headers={"cookie": ann})
    assert {r["user"] for r in requests["requests"]} == {"ann"}
    _, everyone, _ = await call(env, "GET", "/api/usage?hours=24&by=user", headers=BEARER)
    assert {s["label"] for s in everyone["series"]} == {"ann", "bob"}
    _, all_rows, _ = await call(env, "GET", "/api/requests?limit=50", headers=BEARER)
    assert {r["user"] for r in all_rows["requests"]} == {"ann", "bob"}


async def test_a_plain_users_live_feed_carries_only_their_requests(
    make_env: Callable[..., Any],
) -> None:
    """The Live page's SSE stream for ann never names bob."""
    env = await make_env(tweak=shared)
    ann_key, ann = await join(env, "ann")
    bob_key, _ = await join(env, "bob")
    host = env.base.removeprefix("http://")
    received = b""
    with trio.fail_after(20):
        stream = await trio.open_tcp_stream(*host_port(env.base))
        async with stream:
            await stream.send_all(
                f"GET /api/live HTTP/1.1\r\nhost: {host}\r\ncookie: {ann}\r\n\r\n".encode()
            )
            while b"connected" not in received:
                received += await stream.receive_some(65536)
            await trio.to_thread.run_sync(ask_claude, env, bob_key)
            await trio.to_thread.run_sync(ask_claude, env, ann_key)
            while received.count(b"event: end") < 1:
                received += await stream.receive_some(65536)
    assert b'"user":"ann"' in received
    assert b"bob" not in received


async def test_limits_must_be_bounded_whole_numbers(make_env: Callable[..., Any]) -> None:
    """L6: 1e309, 10**19, true, 0, -1, 1.5, "x", NaN and share 101 are 400, never 500; the
    user's limits are unchanged; a sane value is saved."""
    env = await make_env(tweak=with_token)
    await env.services.directory.add_user("ivy")
    bad = [
        b'{"limits":{"rpm":1e309}}',
        b'{"limits":{"rpm":10000000000000000000}}',
        b'{"limits":{"streams":1000000001}}',
        b'{"limits":{"rpm":true}}',
        b'{"limits":{"rpm":0}}',
        b'{"limits":{"streams":-1}}',
        b'{"limits":{"rpm":1.5}}',
        b'{"limits":{"rpm":"x"}}',
        b'{"limits":{"share_pct":NaN}}',
        b'{"limits":{"share_pct":Infinity}}',
        b'{"limits":{"share_pct":101}}',
        b'{"limits":{"share_pct":"50"}}',
        b'{"limits":[1]}',
    ]
    headers = {**BEARER, "content-type": "application/json"}
    for body in bad:
        status, document, _ = await call(env, "PATCH", "/api/users/ivy", json.loads(body), headers)
        assert status == 400, (body, document)
        assert "limits" in document["error"]["message"]
    status, document, _ = await call(
        env, "POST", "/api/users", {"name": "max", "limits": {"rpm": 1e309}}, headers
    )
    assert status == 400
    assert "max" not in env.services.directory.users
    status, document, _ = await call(
        env, "PATCH", "/api/users/ivy", {"limits": {"rpm": 1e9, "share_pct": 12.5}}, headers
    )
    assert status == 200, document
    assert document["user"]["limits"] == {"rpm": 10**9, "streams": None, "share_pct": 12.5}


async def test_a_user_cannot_mint_keys_without_end(make_env: Callable[..., Any]) -> None:
    """M5: bob's cookie mints keys up to the cap, then 409 until one is revoked."""
    env = await make_env(tweak=shared)
    _, bob = await join(env, "bob")
    headers = {"cookie": bob, **CSRF}
    statuses = [
        (await call(env, "POST", "/api/users/bob/keys", headers=headers))[0] for _ in range(30)
    ]
    assert statuses.count(201) == MAX_KEYS_PER_USER - 1  # the sign-up made the first
    assert statuses[-1] == 409
    directory = env.services.directory
    assert len(directory.keys_of("bob")) == MAX_KEYS_PER_USER
    first = directory.keys_of("bob")[0]
    status, _, _ = await call(env, "DELETE", f"/api/keys/{first.id}", headers=headers)
    assert status == 200
    # Revoking ended bob's sessions too (H2): he signs in again with a key of his.
    status, _, _ = await call(env, "POST", "/api/users/bob/keys", headers=headers)
    assert status == 401
