"""Keeping the pool in step with state.db, so processes of one host (and a restart) agree.

Soon after the pool changes (and at least every second) the service writes what this
process learned and reads what the others wrote since its last read; the merge rules are
in ``merge``. The first sync, before the proxy serves, loads everything known about the
pool's accounts: a restart keeps cooldowns, so a cooling account is not hammered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.model import DAY_S, AccountRecord, PinRecord
from trio_pool.accounts.pool import Pool
from trio_pool.errors import TrioPoolError
from trio_pool.providers.base import TokenUsage
from trio_pool.state import ops
from trio_pool.state.merge import (
    Counters,
    StoredAccount,
    adopt,
    changed_verdicts,
    counter_delta,
    counters_of,
    readings_differ,
    with_counters,
)

if TYPE_CHECKING:
    from trio_pool.state.pg.listen import Wakeup

log = logging.getLogger(__name__)

SYNC_INTERVAL_S = 1.0  # read the others' changes at least this often
POLL_S = 0.2  # how soon a change of ours is written
PRUNE_INTERVAL_S = 300.0
FINAL_SYNC_S = 2.0  # at shutdown, this long to write what is left

PinKey = tuple[str, str]


class SyncStore(Protocol):
    """Where the exchange goes: state.db (``StateStore``) or PostgreSQL (``PgStore``)."""

    async def exchange(
        self,
        *,
        now: float,
        pushes: Sequence[ops.Push],
        pins: Sequence[PinRecord],
        fetch: Sequence[str],
        since: int,
    ) -> ops.Pulled: ...

    async def prune_pins(self, before: float) -> int: ...


def _no_file(_name: str) -> int | None:
    return None


@attrs.define(eq=False)
class StateSync:
    store: SyncStore
    pool: Pool
    # mtime_ns of an account's credential file as this process last read it (None: unknown);
    # makes needs-re-login verdicts about an older file stale.
    file_ns: Callable[[str], int | None] = _no_file
    # What this process last agreed with the db, per account and per pin.
    _base: dict[str, StoredAccount] = attrs.field(factory=dict)
    _pin_base: dict[PinKey, PinRecord] = attrs.field(factory=dict)
    # Multi-host mode: a NOTIFY from another host wakes the loop at once, and a change of
    # ours is written sooner (pins must reach the next host before the next turn does).
    wake: Wakeup | None = None
    poll_s: float = POLL_S
    interval_s: float = SYNC_INTERVAL_S
    _since: int = 0
    _pruned_at: float = 0.0
    _failing: bool = False

    async def sync_once(self) -> None:
        """One exchange with the db: write our changes, read and merge the others'."""
        now = clock.now()
        exported = {r.name: r for r in self.pool.export(now)}
        pushes, fetch = self._changes(exported)
        pins = [p for p in self.pool.export_pins(now) if self._pin_base.get(_key(p)) != p]
        pulled = await self.store.exchange(
            now=now, pushes=pushes, pins=pins, fetch=fetch, since=self._since
        )
        self._since = pulled.version
        self._merge(exported, pulled, int(now // DAY_S))
        self.pool.merge_pins(pulled.pins, clock.now())
        for pin in [*pins, *pulled.pins]:
            self._pin_base[_key(pin)] = pin
        if now - self._pruned_at >= PRUNE_INTERVAL_S:
            self._pruned_at = now
            await self._prune(now)

    def _changes(self, exported: dict[str, AccountRecord]) -> tuple[list[ops.Push], list[str]]:
        pushes: list[ops.Push] = []
        fetch: list[str] = []
        for name, record in exported.items():
            base = self._base.get(name)
            if base is None:
                fetch.append(name)  # new to this process: learn the db's view first
                continue
            verdicts = changed_verdicts(base.record, record)
            row = bool(verdicts) or readings_differ(base.record, record)
            counts = counter_delta(counters_of(base.record), counters_of(record))
            counted = counts.requests != 0 or counts.total != TokenUsage()
            if row or counted:
                pushes.append(
                    ops.Push(record, verdicts, counts, base.record.day, self.file_ns(name), row)
                )
        return pushes, fetch

    def _merge(self, exported: dict[str, AccountRecord], pulled: ops.Pulled, day: int) -> None:
        adopted = []
        for current in self.pool.export(clock.now()):
            name = current.name
            before = exported.get(name)
            if before is None:
                continue  # appeared while the db was busy: next time
            stored = pulled.accounts.get(name) or self._base.get(name)
            if stored is None:
                stored = StoredAccount(AccountRecord(name, current.provider))
            counters = pulled.counters.get(name, Counters(day))
            adopted.append(adopt(current, before, stored, counters, file_ns=self.file_ns(name)))
            self._base[name] = attrs.evolve(stored, record=with_counters(stored.record, counters))
        self.pool.adopt(adopted)
        for name in set(self._base) - set(exported):
            del self._base[name]  # removed from the pool: reloaded if it comes back

    async def _prune(self, now: float) -> None:
        ttl = self.pool.routing.pin_idle_ttl_s
        await self.store.prune_pins(now - ttl)
        for key in [k for k, p in self._pin_base.items() if now - p.last_used > ttl]:
            del self._pin_base[key]

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Sync soon after each change and every second, until cancelled; then a last write."""
        task_status.started()
        try:
            seen = -1
            last = -self.interval_s
            while True:
                woke = False
                if self.wake is not None:
                    woke = await self.wake.wait(self.poll_s)
                else:
                    await trio.sleep(self.poll_s)
                quiet = self.pool.changes == seen and not woke
                if quiet and trio.current_time() - last < self.interval_s:
                    continue
                seen = self.pool.changes
                last = trio.current_time()
                await self.try_sync()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(FINAL_SYNC_S):
                await self.try_sync()

    async def try_sync(self) -> None:
        try:
            await self.sync_once()
        except TrioPoolError as exc:
            # Once per outage at warning level: a retry every poll would flood the log.
            log.log(
                logging.DEBUG if self._failing else logging.WARNING,
                "state.sync.failed reason=%s",
                exc,
            )
            self._failing = True
        else:
            self._failing = False


def _key(pin: PinRecord) -> PinKey:
    return (pin.provider, pin.key)


async def serve_state_sync(
    store: SyncStore,
    pool: Pool,
    *,
    file_ns: Callable[[str], int | None] = _no_file,
    wake: Wakeup | None = None,
    poll_s: float = POLL_S,
    interval_s: float = SYNC_INTERVAL_S,
    task_status: trio.TaskStatus[StateSync] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Load the db into the pool, report started, then keep both in step until cancelled."""
    sync = StateSync(store, pool, file_ns, wake=wake, poll_s=poll_s, interval_s=interval_s)
    await sync.try_sync()
    task_status.started(sync)
    await sync.serve()
