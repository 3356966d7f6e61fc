"""How one process's account state and the shared copy in state.db are merged (pure).

Three kinds of field:

* Readings (quota windows per name, the penalty, ``last_used``) carry their own time, so
  merging is a join: the newer reading of a window, the newer penalty, the later use.
* Verdicts (cooldown, backoff, needs-re-login, needs-action) can be set *and* cleared (a
  fresh reading that shows room clears a cooldown early, design.md §3.5; new tokens clear
  needs-re-login; a changed file clears needs-action),
  so they carry a stamp: the time a process changed them. A process only writes a verdict
  it changed itself since it last agreed with the db; the db keeps the newest change, except
  that two cooldowns (or backoffs) set independently keep the later end: a quota reset
  named by the upstream is never shortened by another process's shorter guess.
* Counters (requests and tokens) are added: each process writes its increments.

``base`` is the record the process last agreed with the db; ``exported`` what it had when
a sync started; ``current`` what it has when the sync's answer arrives (requests go on
while the db is busy in a worker thread: those changes are kept and written next time).
"""

from __future__ import annotations

from typing import Any

import attrs

from trio_pool.accounts.model import AccountRecord, ObservedWindow
from trio_pool.providers.base import TokenUsage

VERDICTS = ("cooldown", "backoff", "relogin", "action")
# Verdicts about one version of the credential file: a newer file makes them stale.
FILE_VERDICTS = ("relogin", "action")


@attrs.frozen
class Stamps:
    """When each verdict was last changed (unix seconds), and by whom."""

    cooldown_at: float = 0.0
    backoff_at: float = 0.0
    relogin_at: float = 0.0
    # mtime_ns of the credential file a needs-re-login verdict was about: a newer file
    # (a re-login, even while no trio-pool ran) makes the verdict stale.
    relogin_file_ns: int | None = None
    action_at: float = 0.0
    action_file_ns: int | None = None  # as relogin_file_ns, for the needs-action verdict


@attrs.frozen
class StoredAccount:
    record: AccountRecord
    stamps: Stamps = Stamps()


@attrs.frozen
class Counters:
    """An account's request and token counts for one UTC day, plus its all-time tokens."""

    day: int = -1
    requests: int = 0
    today: TokenUsage = attrs.field(factory=TokenUsage)
    total: TokenUsage = attrs.field(factory=TokenUsage)


def verdict(record: AccountRecord, group: str) -> tuple[Any, ...]:
    if group == "cooldown":
        return (record.cooldown_until, record.cooldown_reason, record.quota_fallback_level)
    if group == "backoff":
        return (record.backoff_until, record.backoff_reason, record.throttle_level)
    if group == "action":
        return (record.action,)
    return (record.needs_relogin,)


def _with_verdict(record: AccountRecord, group: str, value: tuple[Any, ...]) -> AccountRecord:
    if group == "cooldown":
        until, reason, level = value
        return attrs.evolve(
            record, cooldown_until=until, cooldown_reason=reason, quota_fallback_level=level
        )
    if group == "backoff":
        until, reason, level = value
        return attrs.evolve(
            record, backoff_until=until, backoff_reason=reason, throttle_level=level
        )
    if group == "action":
        return attrs.evolve(record, action=value[0])
    return attrs.evolve(record, needs_relogin=value[0])


def changed_verdicts(base: AccountRecord, record: AccountRecord) -> frozenset[str]:
    return frozenset(g for g in VERDICTS if verdict(base, g) != verdict(record, g))


def join_readings(ours: AccountRecord, theirs: AccountRecord) -> AccountRecord:
    """Our record with the newer of each window, the newer penalty and the later use."""
    windows: dict[str, ObservedWindow] = {w.name: w for w in ours.windows}
    for w in theirs.windows:
        mine = windows.get(w.name)
        if mine is None or mine.seen_at < w.seen_at:
            windows[w.name] = w
    penalty = ours if ours.penalty_at >= theirs.penalty_at else theirs
    uses = [t for t in (ours.last_used, theirs.last_used) if t is not None]
    return attrs.evolve(
        ours,
        windows=tuple(windows.values()),
        penalty=penalty.penalty,
        penalty_at=penalty.penalty_at,
        last_used=max(uses, default=None),
    )


def readings_differ(a: AccountRecord, b: AccountRecord) -> bool:
    return (set(a.windows), a.penalty, a.penalty_at, a.last_used) != (
        set(b.windows),
        b.penalty,
        b.penalty_at,
        b.last_used,
    )


def _pick(group: str, ours: tuple[Any, ...], theirs: tuple[Any, ...]) -> tuple[Any, ...]:
    """Our fresh change of a verdict against the db's: ours, unless both set an end and
    theirs ends later."""
    if group in ("cooldown", "backoff") and ours[0] is not None and theirs[0] is not None:
        return theirs if theirs[0] > ours[0] else ours
    return ours


def resolve_write(
    stored: StoredAccount | None,
    local: AccountRecord,
    changed: frozenset[str],
    now: float,
    relogin_file_ns: int | None = None,
) -> StoredAccount:
    """The row to store when this process changed ``changed`` verdicts and maybe readings."""
    if stored is None:
        stored = StoredAccount(AccountRecord(local.name, local.provider))
    record = join_readings(stored.record, local)
    stamps = stored.stamps
    for group in changed:
        record = _with_verdict(
            record, group, _pick(group, verdict(local, group), verdict(stored.record, group))
        )
        if group == "cooldown":
            stamps = attrs.evolve(stamps, cooldown_at=now)
        elif group == "backoff":
            stamps = attrs.evolve(stamps, backoff_at=now)
        elif group == "action":
            file_ns = relogin_file_ns if local.action is not None else None
            stamps = attrs.evolve(stamps, action_at=now, action_file_ns=file_ns)
        else:
            file_ns = relogin_file_ns if local.needs_relogin is not None else None
            stamps = attrs.evolve(stamps, relogin_at=now, relogin_file_ns=file_ns)
    return StoredAccount(record, stamps)


def counter_delta(old: Counters, new: Counters) -> Counters:
    """What happened between two readings of the same process's counters."""
    total = _minus(new.total, old.total)
    if new.day == old.day:
        return Counters(new.day, new.requests - old.requests, _minus(new.today, old.today), total)
    return Counters(new.day, new.requests, new.today, total)  # the day rolled over


def counters_of(record: AccountRecord) -> Counters:
    return Counters(record.day, record.requests_today, record.tokens_today, record.tokens_total)


def with_counters(record: AccountRecord, counters: Counters) -> AccountRecord:
    return attrs.evolve(
        record,
        day=counters.day,
        requests_today=counters.requests,
        tokens_today=counters.today,
        tokens_total=counters.total,
    )


def adopt(
    current: AccountRecord,
    exported: AccountRecord,
    stored: StoredAccount,
    counters: Counters,
    *,
    file_ns: int | None = None,
) -> AccountRecord:
    """The record this process takes from the db: the db's verdicts, except those it changed
    while the db was busy; readings joined; the host's counters plus its own new ones.

    A needs-re-login or needs-action verdict about an older credential file than ours
    (``file_ns``) is stale and not taken.
    """
    record = join_readings(current, stored.record)
    for group in VERDICTS:
        if verdict(current, group) != verdict(exported, group):
            continue  # changed here meanwhile: kept, and written on the next sync
        theirs = verdict(stored.record, group)
        about = (
            stored.stamps.relogin_file_ns if group == "relogin" else stored.stamps.action_file_ns
        )
        stale = (
            group in FILE_VERDICTS
            and theirs[0] is not None
            and file_ns is not None
            and about is not None
            and file_ns > about
        )
        if not stale:
            record = _with_verdict(record, group, theirs)
    mine = counter_delta(counters_of(exported), counters_of(current))
    return with_counters(
        record,
        Counters(
            counters.day,
            counters.requests + mine.requests,
            counters.today + mine.today,
            counters.total + mine.total,
        ),
    )


def _minus(a: TokenUsage, b: TokenUsage) -> TokenUsage:
    return TokenUsage(
        a.input - b.input, a.cached - b.cached, a.output - b.output, a.reasoning - b.reasoning
    )
