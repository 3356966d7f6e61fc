"""Three hosts, one pool: a refresh storm and pins that follow a conversation across hosts."""

from __future__ import annotations

import base64

import psycopg
import trio
import trio.lowlevel

from tests.multihost.cluster import KEY, Cluster, claude_request
from trio_pool import clock
from trio_pool.state.pg import credentials
from trio_pool.state.pg.sealing import Keyring
from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool

REQUESTS = 300
CONCURRENCY = 60


async def start_three(cluster: Cluster, accounts: int) -> None:
    now = clock.now()
    for index in range(accounts):
        # Due for refresh at once (the lead is 300 s), and every new token again after 3 s.
        windows = [SimWindow("5h", 5 * 3600.0, 1e9), SimWindow("7d", 7 * 86400.0, 1e9)]
        cluster.sim.add(
            new_account("claude", f"c{index}", now=now, expires_in_s=301.0, windows=windows)
        )
    cluster.sim.token_lifetime_s = 303.0
    cluster.sim.token_delay_s = 0.2
    cluster.sim.revoke_on_reuse = True
    write_pool(cluster.root / "pool", cluster.sim, now=now)
    for _ in range(3):
        await cluster.add_host()
    await cluster.start(cluster.hosts[0])  # migrates and imports first
    async with trio.open_nursery() as nursery:
        for host in cluster.hosts[1:]:
            nursery.start_soon(cluster.start, host)


def stored_refresh_tokens(pg_url: str) -> dict[str, str]:
    keyring = Keyring.parse(KEY)
    assert base64.b64decode(KEY)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        names = list(credentials.versions(conn))
        found = credentials.read_many(conn, keyring, names)
    result = {}
    for row in found:
        assert not isinstance(row, Exception)
        result[row.account] = row.document["claudeAiOauth"]["refreshToken"]
    return result


async def test_a_refresh_storm_over_three_hosts_spends_each_refresh_token_once(
    cluster: Cluster,
) -> None:
    """300 requests, 60 at a time, spread over three hosts while the access tokens keep
    expiring: every request succeeds, token calls equal rotations, no refresh token is
    presented twice, and the stored refresh token is the provider's current one."""
    await start_three(cluster, accounts=2)
    statuses: list[int] = []
    send = trio.Semaphore(CONCURRENCY)

    async def one(index: int) -> None:
        host = cluster.hosts[index % 3]
        async with send:
            conn = host.connection()
            try:
                reply = await conn.request(claude_request(host.port))
            finally:
                await conn.aclose()
        statuses.append(reply.status)
        await trio.lowlevel.checkpoint()

    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            for index in range(REQUESTS):
                nursery.start_soon(one, index)
                await trio.sleep(0.02)  # spread over ~6 s: several rotations per account
    accounts = list(cluster.sim.accounts.values())
    calls = sum(a.refreshes for a in accounts)
    rotations = sum(a.rotations for a in accounts)
    print(
        f"\nstorm: {calls} token calls, {rotations} rotations, reuses {[a.reuses for a in accounts]}"
    )
    assert statuses == [200] * REQUESTS
    assert rotations >= 2 * len(accounts)  # the storm did rotate, repeatedly
    assert calls == rotations
    assert all(a.reuses == 0 and not a.revoked for a in accounts)
    assert stored_refresh_tokens(cluster.pg_url) == {a.key: a.refresh_token for a in accounts}


async def test_a_conversation_alternating_hosts_stays_on_one_account(cluster: Cluster) -> None:
    """Turns of one conversation go to host 0, 1, 2, 0, ...: every turn lands on the account
    the first turn chose (the pin travels through PostgreSQL between turns)."""
    await start_three(cluster, accounts=3)
    cluster.sim.token_lifetime_s = None  # no refreshes needed here
    switches = turns = 0
    with trio.fail_after(60):
        for conversation in range(5):
            last = None
            for turn in range(9):
                host = cluster.hosts[turn % 3]
                before = {a.key: a.generations for a in cluster.sim.accounts.values()}
                conn = host.connection()
                try:
                    reply = await conn.request(claude_request(host.port, f"conv-{conversation}"))
                finally:
                    await conn.aclose()
                assert reply.status == 200
                (served,) = [
                    a.key for a in cluster.sim.accounts.values() if a.generations > before[a.key]
                ]
                turns += 1
                switches += last is not None and served != last
                last = served
                await trio.sleep(0.2)  # a turn's think time (real turns take seconds)
    print(f"\npins: {turns} turns, {switches} switches")
    assert switches == 0
