"""Users across hosts over real HTTP: two proxies share one PostgreSQL. A cookie made on
one host works on the other, a sign-out on one ends it on the other (the session epochs
are shared), and ``[join] signups_per_hour`` counts the sign-ups of every host."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.multihost.cluster import KEY
from tests.proxy.conftest import Env
from tests.proxy.test_sessions_end import cookie_header, signed_in_as, until
from tests.proxy.test_shared_mode import CODE, JOIN_HEADERS, call, join
from trio_pool import clock
from trio_pool.app import serve_proxy
from trio_pool.config import JoinConfig, StateConfig
from trio_pool.demo import demo_config
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState


@pytest.fixture
def two_hosts(
    nursery: trio.Nursery, tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Any]:
    """Start a simulator and two proxies (own data dirs, one pool dir, one database)."""
    monkeypatch.setenv("TRIO_POOL_STATE_KEY", KEY)

    async def start() -> tuple[Env, Env]:
        state = SimState.with_accounts([new_account("claude", "a", now=clock.now())])
        sim_base = await nursery.start(serve_simulator, state)
        write_pool(tmp_path / "pool", state)
        envs = []
        for name in ("a", "b"):
            config = attrs.evolve(
                demo_config(sim_base, tmp_path, "127.0.0.1:0"),
                data_dir=tmp_path / name,
                state_url=pg_url,
                state=StateConfig(host_id=f"host-{name}"),
                friend_code=CODE,
                join=JoinConfig(signups_per_hour=1),
            )
            running = await nursery.start(serve_proxy, config)
            envs.append(Env(running, state, sim_base, tmp_path / "pool"))
        return envs[0], envs[1]

    return start


async def test_signing_out_on_one_host_ends_the_session_on_the_other(
    two_hosts: Callable[[], Any],
) -> None:
    """Alice signs up on host A; her cookie works on host B too (one session secret). She
    signs out on A: within a reload, B refuses that cookie as well."""
    a, b = await two_hosts()
    _, cookie = await join(a, "alice")

    async def known() -> bool:
        return await signed_in_as(b, cookie) == "alice"

    await until(known)  # B has reloaded the users (every 2 s)
    status, _, _ = await call(a, "DELETE", "/api/session", headers=cookie_header(cookie))
    assert status == 200

    async def ended() -> bool:
        return await signed_in_as(b, cookie) is None

    await until(ended)


async def test_the_sign_up_rate_counts_every_hosts_sign_ups(
    two_hosts: Callable[[], Any],
) -> None:
    """With signups_per_hour = 1, a sign-up on host A uses the pool's hour: host B refuses
    the next one (429 with Retry-After) once it has reloaded, instead of allowing its own."""
    a, b = await two_hosts()
    await join(a, "alice")
    directory = b.running.services.directory

    async def reloaded() -> bool:
        return directory.signups.retry_after(clock.now()) is not None

    await until(reloaded)  # B has read A's sign-up (every 2 s)
    status, document, response = await call(
        b, "POST", "/api/join", {"code": CODE, "name": "bob"}, JOIN_HEADERS
    )
    assert status == 429, document
    assert b"retry-after" in dict(response.headers)
