"""H2, L2 and L10 over real HTTP: sign-out, a revoked key, a password change and a removed
user end the sessions they should, even when the change comes from another trio-pool process
(`trio-pool users revoke`, `trio-pool password`); a new user's key works at once."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import attrs
import trio
import trio.lowlevel

from tests.proxy.conftest import Env
from tests.proxy.raw_http import send
from tests.proxy.test_shared_mode import JOIN_HEADERS, call, join, shared
from trio_pool.config import Config

PASSWORD = "the first admin password"
RELOAD_WAIT_S = 6.0  # the directory re-reads state.db every 2 s


async def trio_pool_cli(env: Env, *argv: str, stdin: bytes = b"") -> str:
    """Run a real ``trio-pool`` process on the proxy's data dir; its stdout."""
    data_dir = str(env.running.config.data_dir)
    with trio.fail_after(30):
        done = await trio.run_process(
            [sys.executable, "-m", "trio_pool", *argv, "--data-dir", data_dir],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            env={**os.environ, "TRIO_POOL_CONFIG": ""},
        )
    return done.stdout.decode()


def cookie_header(cookie: str) -> dict[str, str]:
    return {"cookie": cookie, **JOIN_HEADERS}


async def until(predicate: Callable[[], Any], timeout_s: float = RELOAD_WAIT_S) -> None:
    """Poll an async predicate (real clock, real sockets) until it holds."""
    with trio.fail_after(timeout_s):
        while not await predicate():
            await trio.sleep(0.1)


async def signed_in_as(env: Env, cookie: str) -> str | None:
    _, document, _ = await call(env, "GET", "/api/session", headers={"cookie": cookie})
    user = document.get("user")
    return None if user is None else str(user.get("name") or user.get("role"))


async def key_session(env: Env, key: str) -> str:
    status, document, response = await call(env, "POST", "/api/session", {"key": key}, JOIN_HEADERS)
    assert status == 200, document
    return dict(response.headers)[b"set-cookie"].decode().split(";")[0]


async def admin_session(env: Env, password: str) -> str:
    status, document, response = await call(
        env, "POST", "/api/session", {"password": password}, JOIN_HEADERS
    )
    assert status == 200, document
    return dict(response.headers)[b"set-cookie"].decode().split(";")[0]


async def test_signing_out_ends_the_session_not_just_the_cookie(
    make_env: Callable[..., Any],
) -> None:
    """A copy of the cookie taken before sign-out is refused afterwards, for reading and for
    minting keys."""
    env = await make_env(tweak=shared)
    key, _ = await join(env, "alice")
    stolen = await key_session(env, key)
    assert await signed_in_as(env, stolen) == "alice"
    status, _, _ = await call(env, "DELETE", "/api/session", headers=cookie_header(stolen))
    assert status == 200
    assert await signed_in_as(env, stolen) is None
    status, _, _ = await call(env, "POST", "/api/users/alice/keys", headers=cookie_header(stolen))
    assert status == 401


async def test_revoking_a_stolen_key_locks_its_holder_out_of_the_dashboard_too(
    make_env: Callable[..., Any],
) -> None:
    """The audit's thief: signed in with a stolen key, then the admin runs
    `trio-pool users revoke ID` in another process; the cookie can no longer mint a key."""
    env = await make_env(tweak=shared)
    key, _ = await join(env, "alice")
    thief = await key_session(env, key)
    (record,) = env.services.directory.keys_of("alice")
    await trio_pool_cli(env, "users", "revoke", record.id)

    async def refused() -> bool:
        return await signed_in_as(env, thief) is None

    await until(refused)
    status, document, _ = await call(
        env, "POST", "/api/users/alice/keys", headers=cookie_header(thief)
    )
    assert status == 401, document
    assert "key" not in document


async def test_a_password_change_from_the_cli_ends_older_admin_sessions(
    make_env: Callable[..., Any],
) -> None:
    """`trio-pool password` in another process: the old admin cookie stops working for
    reading users and for adding one; signing in with the new password works."""
    env = await make_env(tweak=shared)
    await env.services.directory.set_password(PASSWORD)
    old = await admin_session(env, PASSWORD)
    status, _, _ = await call(env, "GET", "/api/users", headers={"cookie": old})
    assert status == 200
    await trio_pool_cli(env, "password", "--stdin", stdin=b"the second admin password\n")

    async def refused() -> bool:
        status, _, _ = await call(env, "GET", "/api/users", headers={"cookie": old})
        return status == 401

    await until(refused)
    status, _, _ = await call(env, "POST", "/api/users", {"name": "mallory"}, cookie_header(old))
    assert status == 401
    assert "mallory" not in env.services.directory.users
    fresh = await admin_session(env, "the second admin password")
    status, _, _ = await call(env, "GET", "/api/users", headers={"cookie": fresh})
    assert status == 200


async def test_the_page_that_sets_the_password_stays_signed_in(
    make_env: Callable[..., Any],
) -> None:
    """POST /api/password ends older admin sessions but hands the caller a current one."""
    env = await make_env(tweak=shared)
    await env.services.directory.set_password(PASSWORD)
    first = await admin_session(env, PASSWORD)
    other = await admin_session(env, PASSWORD)
    status, _, response = await call(
        env, "POST", "/api/password", {"password": "a brand new password"}, cookie_header(first)
    )
    assert status == 200
    renewed = dict(response.headers)[b"set-cookie"].decode().split(";")[0]
    assert await signed_in_as(env, renewed) == "admin"
    assert await signed_in_as(env, other) is None
    assert await signed_in_as(env, first) is None


async def test_a_removed_user_who_rejoins_under_the_same_name_is_someone_else(
    make_env: Callable[..., Any],
) -> None:
    """L2: jon's old cookie stays dead after `users remove jon` and a new jon joins."""
    env = await make_env(tweak=shared)
    _, old_cookie = await join(env, "jon")
    assert await signed_in_as(env, old_cookie) == "jon"
    await trio_pool_cli(env, "users", "remove", "jon")

    async def gone() -> bool:
        return "jon" not in env.services.directory.users

    await until(gone)
    _, new_cookie = await join(env, "jon")
    assert await signed_in_as(env, new_cookie) == "jon"
    assert await signed_in_as(env, old_cookie) is None
    status, _, _ = await call(env, "POST", "/api/users/jon/keys", headers=cookie_header(old_cookie))
    assert status == 401


async def test_a_new_users_key_works_at_once_even_while_the_directory_reloads(
    make_env: Callable[..., Any],
) -> None:
    """L10: 60 sign-ups, each used at once, while reloads run back to back (the 2 s reload
    made as frequent as it can be, so that a stale snapshot would surely land)."""

    def many_signups(config: Config) -> Config:
        if not hasattr(config, "join"):  # before [join] existed there was no sign-up cap
            return shared(config)
        join = attrs.evolve(config.join, signups_per_hour=100)
        return attrs.evolve(shared(config), join=join)

    env = await make_env(tweak=many_signups)
    directory = env.services.directory
    refused: list[str] = []

    async def reload_forever() -> None:
        while True:
            await directory.load()
            await trio.lowlevel.checkpoint()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reload_forever)
        for n in range(60):
            name = f"quick{n}"
            key, cookie = await join(env, name)
            if await signed_in_as(env, cookie) != name:
                refused.append(f"{name}: cookie")
            headers = {"x-trio-pool-key": key}
            status, _ = await send(env.base, "GET", "/backend-api/wham/usage", headers=headers)
            if status != 200:
                refused.append(f"{name}: key {status}")
        nursery.cancel_scope.cancel()
    assert refused == []
