"""H3, M6, M2 and L4 over real sockets: password guesses are counted before scrypt and
bounded in number and memory; each secret has its own throttle; big JSON bodies are refused
unread; a trusted reverse proxy's X-Forwarded-For decides who is "this machine"."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from tests.proxy.conftest import Env
from tests.proxy.raw_http import host_port, send
from tests.proxy.test_shared_mode import CODE, JOIN_HEADERS, shared
from trio_pool.auth.throttle import PER_CLIENT
from trio_pool.config import Config

PASSWORD = "the admin password, long"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
JSON = {"content-type": "application/json", **JOIN_HEADERS}


def with_admin(config: Config) -> Config:
    return attrs.evolve(shared(config), admin_token=ADMIN_TOKEN)


def behind_proxy(config: Config) -> Config:
    return attrs.evolve(with_admin(config), trusted_proxies=("127.0.0.1",))


async def post(env: Env, path: str, document: Any, **headers: str) -> int:
    """POST JSON with the page's headers; keyword headers spelled with _ for -."""
    extra = {k.replace("_", "-"): v for k, v in headers.items()}
    status, _ = await send(
        env.base, "POST", path, headers={**JSON, **extra}, body=json.dumps(document).encode()
    )
    return status


async def test_a_burst_of_password_guesses_is_counted_as_it_arrives(
    make_env: Callable[..., Any],
) -> None:
    """40, then 80 concurrent wrong passwords from one address: at most PER_CLIENT are ever
    checked (401), the rest get 429 or 503 at once, and no more than two scrypt checks run
    at the same time (32 MiB each)."""
    env = await make_env(tweak=with_admin)
    directory = env.services.directory
    await directory.set_password(PASSWORD)
    statuses: list[int] = []
    peak = 0

    async def guess(n: int) -> None:
        statuses.append(await post(env, "/api/session", {"password": f"guess-{n}"}))

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, getattr(directory, "password_checks_running", 0))
            await trio.sleep(0.001)

    async with trio.open_nursery() as watcher:
        watcher.start_soon(sample)
        for burst in (40, 80):
            async with trio.open_nursery() as nursery:
                for n in range(burst):
                    nursery.start_soon(guess, n)
        watcher.cancel_scope.cancel()
    assert len(statuses) == 120
    assert statuses.count(401) <= PER_CLIENT
    assert set(statuses) <= {401, 429, 503}
    assert 1 <= peak <= 2
    # One at a time, the guesses left for that address run out at PER_CLIENT in all.
    for n in range(PER_CLIENT + 3):
        statuses.append(await post(env, "/api/session", {"password": f"slow-{n}"}))
    assert statuses.count(401) == PER_CLIENT
    assert statuses[-1] == 429


async def test_guessing_one_secret_does_not_lock_out_the_others(
    make_env: Callable[..., Any],
) -> None:
    """Five wrong friend codes (with made-up X-Forwarded-For, ignored by default), then: the
    admin password, the admin_token as password and a pool key still sign in."""
    env = await make_env(tweak=with_admin)
    directory = env.services.directory
    await directory.set_password(PASSWORD)
    _, key = await directory.add_user("ann")
    for n in range(PER_CLIENT):
        status = await post(
            env, "/api/join", {"code": "wrong", "name": "x"}, x_forwarded_for=f"203.0.113.{n}"
        )
        assert status == 401
    assert await post(env, "/api/join", {"code": CODE, "name": "x"}) == 429  # this address
    assert await post(env, "/api/session", {"password": PASSWORD}) == 200
    assert await post(env, "/api/session", {"password": ADMIN_TOKEN}) == 200
    assert await post(env, "/api/session", {"key": key}) == 200
    for n in range(PER_CLIENT):
        assert await post(env, "/api/session", {"key": f"tp-{n:040d}"}) == 401
    assert await post(env, "/api/session", {"key": key}) == 429
    assert await post(env, "/api/session", {"password": PASSWORD}) == 200


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket(
    make_env: Callable[..., Any],
) -> None:
    """With trusted_proxies, a guesser behind nginx locks out only their own address; the
    admin signing in from another address after a password burst gets in."""
    env = await make_env(tweak=behind_proxy)
    directory = env.services.directory
    await directory.set_password(PASSWORD)
    guesser = {"x_forwarded_for": "198.51.100.7"}
    for n in range(PER_CLIENT):
        assert await post(env, "/api/join", {"code": f"wrong{n}", "name": "x"}, **guesser) == 401
    assert await post(env, "/api/join", {"code": CODE, "name": "x"}, **guesser) == 429
    friend = {"x_forwarded_for": "198.51.100.8"}
    assert await post(env, "/api/join", {"code": CODE, "name": "friend"}, **friend) == 201
    async with trio.open_nursery() as nursery:
        for n in range(30):
            burst = partial(post, env, "/api/session", {"password": f"g{n}"}, **guesser)
            nursery.start_soon(burst)
    admin = {"x_forwarded_for": "192.0.2.1"}
    assert await post(env, "/api/session", {"password": PASSWORD}, **admin) == 200


async def test_sign_ups_per_hour_are_capped_even_with_the_right_code(
    make_env: Callable[..., Any],
) -> None:
    """A leaked friend code mints at most join.signups_per_hour users an hour; sign-ups get
    the [join] default limits."""

    def two_an_hour(config: Config) -> Config:
        join = attrs.evolve(config.join, signups_per_hour=2, rpm=7, streams=3, share_pct=40.0)
        return attrs.evolve(shared(config), join=join)

    env = await make_env(tweak=two_an_hour)
    for name in ("gina-alt0", "gina-alt1"):
        assert await post(env, "/api/join", {"code": CODE, "name": name}) == 201
    status, document = await send(
        env.base,
        "POST",
        "/api/join",
        headers=JSON,
        body=b'{"code":"%s","name":"x"}' % CODE.encode(),
    )
    assert status == 429
    assert "sign-ups" in document["error"]["message"]
    limits = env.services.directory.users["gina-alt0"].limits
    assert (limits.rpm, limits.streams, limits.share_pct) == (7, 3, 40.0)


async def test_a_big_json_body_is_refused_by_its_length_before_it_is_sent(
    make_env: Callable[..., Any],
) -> None:
    """Content-Length 60 MiB on /api/session and /api/join: 413 with only the head sent."""
    env = await make_env(tweak=shared)
    for path in ("/api/session", "/api/join"):
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {env.base.removeprefix('http://')}\r\n"
            "content-type: application/json\r\nx-trio-pool: 1\r\n"
            f"content-length: {60 * 1024 * 1024}\r\n\r\n"
        ).encode()
        host, port = host_port(env.base)
        with trio.fail_after(10):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(head)
                answer = await stream.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 413"), answer[:80]


async def test_a_big_chunked_json_body_is_cut_off_at_the_cap(
    make_env: Callable[..., Any],
) -> None:
    """Chunked, no length: the proxy answers 413 and closes after about 64 KiB, while the
    client was ready to send 60 MiB; far less than that ever left the client."""
    env = await make_env(tweak=shared)
    host, port = host_port(env.base)
    sent = 0
    answer = b""
    head = (
        f"POST /api/session HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        "x-trio-pool: 1\r\ntransfer-encoding: chunked\r\n\r\n"
    ).encode()
    chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
    with trio.fail_after(20):
        stream = await trio.open_tcp_stream(host, port)
        async with stream, trio.open_nursery() as nursery:

            async def write() -> None:
                nonlocal sent
                await stream.send_all(head)
                try:
                    for _ in range(60 * 64):  # 60 MiB of spaces
                        await stream.send_all(chunk)
                        sent += len(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

            nursery.start_soon(write)
            while not answer.endswith(b"}"):
                data = await stream.receive_some(65536)
                if not data:
                    break
                answer += data
            nursery.cancel_scope.cancel()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert b"connection: close" in answer.lower()
    assert sent < 16 * 1024 * 1024


async def test_forwarded_requests_are_not_this_machine_behind_a_trusted_proxy(
    make_env: Callable[..., Any],
) -> None:
    """L4: with trusted_proxies, /healthz details and /metrics need an admin when the request
    came through the proxy; without the setting the TCP peer decides (README)."""
    forwarded = {"x-forwarded-for": "203.0.113.9"}
    env = await make_env(tweak=behind_proxy)
    status, document = await send(env.base, "GET", "/healthz", headers=forwarded)
    assert (status, "accounts" in document) == (200, False)
    status, _ = await send(env.base, "GET", "/metrics", headers=forwarded)
    assert status == 401
    status, document = await send(env.base, "GET", "/healthz")
    assert "accounts" in document  # the machine itself, not forwarded
    untrusted = await make_env(tweak=with_admin)
    status, document = await send(untrusted.base, "GET", "/healthz", headers=forwarded)
    assert "accounts" in document  # documented: without the setting, loopback is local


async def test_a_forwarded_request_is_not_the_local_admin(make_env: Callable[..., Any]) -> None:
    """L4, local mode with trusted_proxies: a request nginx forwarded gets no implicit admin."""

    def local_behind_proxy(config: Config) -> Config:
        return attrs.evolve(config, trusted_proxies=("127.0.0.1",))

    env = await make_env(tweak=local_behind_proxy)
    status, _ = await send(env.base, "GET", "/api/pool")
    assert status == 200
    status, _ = await send(env.base, "GET", "/api/pool", headers={"x-forwarded-for": "203.0.113.9"})
    assert status == 401
