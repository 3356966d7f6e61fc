"""The merge rules between one process's account state and state.db (pure)."""

from __future__ import annotations

import attrs

from trio_pool.accounts.model import AccountRecord, ObservedWindow
from trio_pool.providers.base import QuotaWindow, TokenUsage
from trio_pool.state.merge import (
    Counters,
    Stamps,
    StoredAccount,
    adopt,
    changed_verdicts,
    counter_delta,
    resolve_write,
)

T0 = 1_700_000_000.0
NAME = "codex/a"


def rec(**fields: object) -> AccountRecord:
    return AccountRecord(NAME, "codex", **fields)  # type: ignore[arg-type]


def window(used: float, seen_at: float, name: str = "5h") -> ObservedWindow:
    return ObservedWindow(QuotaWindow(name, used, 18000.0, T0 + 9000), seen_at)


def test_later_cooldown_end_wins_when_both_processes_set_one() -> None:
    """Two cooldowns set independently keep the later end, whoever wrote last."""
    stored = StoredAccount(rec(cooldown_until=T0 + 500, cooldown_reason="theirs"))
    mine = rec(cooldown_until=T0 + 100, cooldown_reason="mine")
    out = resolve_write(stored, mine, frozenset({"cooldown"}), T0 + 1)
    assert out.record.cooldown_until == T0 + 500
    assert out.record.cooldown_reason == "theirs"
    longer = resolve_write(stored, rec(cooldown_until=T0 + 900), frozenset({"cooldown"}), T0 + 1)
    assert longer.record.cooldown_until == T0 + 900


def test_a_fresh_clear_beats_an_older_cooldown() -> None:
    """A cooldown cleared by a fresh reading (design.md §3.5) clears it for everyone."""
    stored = StoredAccount(rec(cooldown_until=T0 + 500), Stamps(cooldown_at=T0))
    out = resolve_write(stored, rec(), frozenset({"cooldown"}), T0 + 2)
    assert out.record.cooldown_until is None
    assert out.stamps.cooldown_at == T0 + 2


def test_unchanged_verdicts_are_not_written_over() -> None:
    """A process writes only the verdicts it changed; the db keeps the others'."""
    stored = StoredAccount(rec(backoff_until=T0 + 30, needs_relogin="invalid_grant"))
    out = resolve_write(stored, rec(cooldown_until=T0 + 60), frozenset({"cooldown"}), T0)
    assert out.record.backoff_until == T0 + 30
    assert out.record.needs_relogin == "invalid_grant"
    assert changed_verdicts(rec(), rec(backoff_until=T0)) == {"backoff"}


def test_newer_window_reading_wins_per_window() -> None:
    """Each window keeps its newest reading; windows only one side knows are kept."""
    stored = StoredAccount(rec(windows=(window(0.9, T0 + 5), window(0.1, T0, "7d"))))
    mine = rec(windows=(window(0.5, T0 + 1), window(0.2, T0 + 9, "7d")))
    out = resolve_write(stored, mine, frozenset(), T0 + 10)
    by_name = {w.name: w for w in out.record.windows}
    assert by_name["5h"].window.used == 0.9
    assert by_name["7d"].window.used == 0.2


def test_adopt_keeps_changes_made_while_the_db_was_busy() -> None:
    """A verdict changed locally during the exchange is kept (and written next time)."""
    exported = rec()
    current = rec(backoff_until=T0 + 5, backoff_reason="throttled")
    stored = StoredAccount(rec(backoff_until=None, cooldown_until=T0 + 100))
    out = adopt(current, exported, stored, Counters(0))
    assert out.backoff_until == T0 + 5
    assert out.cooldown_until == T0 + 100


def test_adopt_adds_local_counts_on_top_of_the_hosts() -> None:
    """Counters: the host's totals plus what this process counted since the exchange began."""
    day = int(T0 // 86400)
    exported = rec(day=day, requests_today=3, tokens_total=TokenUsage(10))
    current = attrs.evolve(exported, requests_today=5, tokens_total=TokenUsage(15))
    host = Counters(day, 40, TokenUsage(100), TokenUsage(1000))
    out = adopt(current, exported, StoredAccount(rec()), host)
    assert out.requests_today == 42
    assert out.tokens_total == TokenUsage(1005)
    rolled = counter_delta(Counters(day - 1, 7), Counters(day, 2))
    assert (rolled.day, rolled.requests) == (day, 2)


def test_relogin_verdict_about_an_older_file_is_stale() -> None:
    """Needs-re-login holds until the credential file changes, even across a restart."""
    stored = StoredAccount(rec(needs_relogin="invalid_grant"), Stamps(relogin_file_ns=100))
    assert adopt(rec(), rec(), stored, Counters(0), file_ns=100).needs_relogin == "invalid_grant"
    assert adopt(rec(), rec(), stored, Counters(0), file_ns=200).needs_relogin is None
