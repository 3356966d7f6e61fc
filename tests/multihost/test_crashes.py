"""The refresh lease under crashes and pauses: kill -9 and SIGSTOP of the lease holder at
each step of the protocol (fault points in credentials/fenced.py). Lease 3 s, doubt wait
8 s. The simulator revokes the whole account when a spent refresh token is presented."""

from __future__ import annotations

import os
import signal

import trio

from bench.client import ConnectionLost
from tests.multihost.cluster import Cluster, Host, claude_request, health
from tests.multihost.test_storm import stored_refresh_tokens
from trio_pool import clock
from trio_pool.testing.accounts import SimAccount
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool

SETTINGS = {"refresh_lease_s": 3.0, "refresh_doubt_wait_s": 8.0}


async def two_hosts(cluster: Cluster, fault: str) -> SimAccount:
    account = cluster.sim.add(new_account("claude", "solo", now=clock.now(), expires_in_s=295.0))
    cluster.sim.revoke_on_reuse = True
    write_pool(cluster.root / "pool", cluster.sim)
    cluster.settings.update(SETTINGS)
    first, second = await cluster.add_host(), await cluster.add_host()
    await cluster.start(first, fault=fault)
    await cluster.start(second)
    return account


async def poke(host: Host) -> int:
    """One request (started in the background: it may wait on a paused refresh)."""
    conn = host.connection()
    try:
        return (await conn.request(claude_request(host.port))).status
    except (OSError, ConnectionLost):
        return 0  # the host was killed under it
    finally:
        await conn.aclose()


async def until(cluster: Cluster, host: Host, done: object, timeout: float = 20) -> None:
    """Keep host busy with requests (one every 0.2 s) until ``done()`` holds."""
    assert callable(done)
    with trio.fail_after(timeout):
        async with trio.open_nursery() as nursery:
            while not done():
                nursery.start_soon(poke, host)
                await trio.sleep(0.2)
            nursery.cancel_scope.cancel()


def outcome(cluster: Cluster, account: SimAccount) -> str:
    stored = stored_refresh_tokens(cluster.pg_url)
    fresh = stored.get(account.key) == account.refresh_token
    return (
        f"calls {account.refreshes} rotations {account.rotations} reuses {account.reuses} "
        f"revoked {account.revoked} stored_is_current {fresh}"
    )


async def test_kill_before_the_mark_lets_another_host_refresh_once(cluster: Cluster) -> None:
    """Holder killed after taking the lease, before its intent mark: it never sent; once
    its lease expires the other host refreshes, exactly one token call, no reuse."""
    account = await two_hosts(cluster, "before_mark:60")
    holder, other = cluster.hosts
    cluster.nursery.start_soon(poke, holder)
    await cluster.wait_log(holder, "fault.point name=before_mark")
    await cluster.kill(holder)
    await until(cluster, other, lambda: account.rotations >= 1)
    await trio.sleep(1.0)
    print(f"\nkill -9 before the mark: {outcome(cluster, account)}")
    assert (account.refreshes, account.rotations, account.reuses) == (1, 1, 0)
    assert stored_refresh_tokens(cluster.pg_url) == {account.key: account.refresh_token}


async def test_a_holder_paused_past_its_lease_before_the_mark_never_sends(
    cluster: Cluster,
) -> None:
    """SIGSTOP before the mark, resumed after the other host took over and refreshed: the
    mark is refused (lease and version moved on), so the spent token is never sent."""
    account = await two_hosts(cluster, "before_mark:1")
    holder, other = cluster.hosts
    assert holder.process is not None
    cluster.nursery.start_soon(poke, holder)
    await cluster.wait_log(holder, "fault.point name=before_mark")
    os.kill(holder.process.pid, signal.SIGSTOP)
    await until(cluster, other, lambda: account.rotations >= 1)
    os.kill(holder.process.pid, signal.SIGCONT)
    await cluster.wait_log(holder, "credentials.refresh.lease_lost")
    await trio.sleep(1.0)
    print(f"\nSIGSTOP before the mark: {outcome(cluster, account)}")
    assert (account.refreshes, account.rotations, account.reuses) == (1, 1, 0)
    assert stored_refresh_tokens(cluster.pg_url) == {account.key: account.refresh_token}


async def test_a_holder_paused_after_sending_lands_its_token_within_the_doubt_wait(
    cluster: Cluster,
) -> None:
    """SIGSTOP right after the provider answered, past the lease, resumed within the doubt
    wait: the taker sees the refresh in doubt and waits; the late compare-and-set lands
    and the taker adopts it. One token call, no reuse, the account lives."""
    account = await two_hosts(cluster, "after_send:0.5")
    holder, other = cluster.hosts
    assert holder.process is not None
    cluster.nursery.start_soon(poke, holder)
    await cluster.wait_log(holder, "fault.point name=after_send")
    os.kill(holder.process.pid, signal.SIGSTOP)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(until, cluster, other, lambda: "in_doubt" in other.log_text())
        await trio.sleep(4.5)  # past the lease (3 s), well within the doubt wait (8 s)
    os.kill(holder.process.pid, signal.SIGCONT)
    await until(cluster, other, lambda: "credentials.refresh.in_doubt" in other.log_text())
    await trio.sleep(2.0)
    print(f"\nSIGSTOP after sending, resumed in time: {outcome(cluster, account)}")
    assert (account.refreshes, account.rotations, account.reuses) == (1, 1, 0)
    assert not account.revoked
    assert stored_refresh_tokens(cluster.pg_url) == {account.key: account.refresh_token}


async def test_a_holder_killed_after_its_spool_write_lands_the_token_on_restart(
    cluster: Cluster,
) -> None:
    """kill -9 after the answer was spooled, before the write-back: the host restarts,
    writes the spooled token back, and nobody spends the old one. No reuse."""
    account = await two_hosts(cluster, "after_spool:60")
    holder, _other = cluster.hosts
    cluster.nursery.start_soon(poke, holder)
    await cluster.wait_log(holder, "fault.point name=after_spool")
    await cluster.kill(holder)
    await cluster.start(holder)
    await cluster.wait_log(holder, "credentials.write_back.landed")
    await trio.sleep(1.0)
    print(f"\nkill -9 after the spool: {outcome(cluster, account)}")
    assert (account.refreshes, account.rotations, account.reuses) == (1, 1, 0)
    assert stored_refresh_tokens(cluster.pg_url) == {account.key: account.refresh_token}


async def test_a_holder_killed_after_sending_without_its_spool_costs_one_reuse_at_most(
    cluster: Cluster,
) -> None:
    """kill -9 after the provider rotated but before the spool write: that rotation is lost
    (nobody has the new token). The taker waits out the doubt, then spends the old token
    exactly once; the provider revokes the account, and every host shows it needs a
    re-login instead of retrying (the residual risk the design names)."""
    account = await two_hosts(cluster, "after_send:60")
    holder, other = cluster.hosts
    cluster.nursery.start_soon(poke, holder)
    await cluster.wait_log(holder, "fault.point name=after_send")
    await cluster.kill(holder)
    await until(cluster, other, lambda: account.revoked, timeout=30)

    async def state_on(host: Host) -> str:
        document = await health(host)
        return str(document["accounts"][0]["state"])

    with trio.fail_after(10):
        while await state_on(other) != "needs_relogin":
            await trio.sleep(0.1)
    await cluster.start(holder)  # a host that starts now learns the verdict too
    with trio.fail_after(10):
        while await state_on(holder) != "needs_relogin":
            await trio.sleep(0.1)
    await trio.sleep(1.0)
    print(f"\nkill -9 after sending, no spool: {outcome(cluster, account)}")
    assert (account.rotations, account.reuses) == (1, 1)
    assert account.refreshes == 2
