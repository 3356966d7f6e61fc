"""The hosts table: each host's heartbeat, and what ``status`` says about the others."""

from __future__ import annotations

import trio

from trio_pool import clock
from trio_pool.config import StateConfig
from trio_pool.state.pg import hosts
from trio_pool.state.pg.hosts import Heartbeat
from trio_pool.state.pg.store import PgStore
from trio_pool.status import render_status


async def test_status_lists_every_host_up_stopped_or_gone(pg_url: str) -> None:
    """Two hosts beat: both are up; one shuts down cleanly (stopped); a third whose last
    beat is older than DEAD_AFTER_S is gone. ``status`` prints one line per host."""
    one = await PgStore.open(pg_url, StateConfig(), writer="host-one")
    two = await PgStore.open(pg_url, StateConfig(), writer="host-two")
    try:
        with trio.fail_after(20):
            first, second = Heartbeat(one), Heartbeat(two)
            async with trio.open_nursery() as nursery:
                await nursery.start(second.serve)
                await first.beat_once()
                assert [(h["host"], h["state"], h["this"]) for h in first.describe()] == [
                    ("host-one", "up", True),
                    ("host-two", "up", False),
                ]
                nursery.cancel_scope.cancel()  # host two shuts down cleanly
            old = clock.now() - hosts.DEAD_AFTER_S - 5
            await one.run(hosts.beat, "host-three", "elsewhere", 7, "0.0", old, old)
            await first.beat_once()
        states = {h["host"]: h["state"] for h in first.describe()}
        assert states == {"host-one": "up", "host-two": "stopped", "host-three": "gone"}
        text = render_status(
            {"accounts": [], "state": {"engine": "postgresql", "reachable": True,
                                       "host": "host-one", "hosts": first.describe()}}
        )  # fmt: skip
        assert "host host-one (this one): up" in text
        assert "host host-two: stopped" in text
        assert "host host-three: GONE, no heartbeat for 0m3" in text
        assert "(elsewhere pid 7, 0.0)" in text
    finally:
        await one.aclose()
        await two.aclose()
