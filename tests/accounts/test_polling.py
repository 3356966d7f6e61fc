"""When usage polls are due: never for unusable accounts, at most every 5 minutes, back off on 429."""

from __future__ import annotations

import attrs

from trio_pool.accounts.model import AccountView
from trio_pool.accounts.polling import BACKOFF_FIRST_S, MIN_INTERVAL_S, RECENT_USE_S, PollSchedule
from trio_pool.providers.base import TokenUsage

NOW = 1_800_000_000.0


def view(name: str, state: str = "ok", last_used: float | None = None) -> AccountView:
    return AccountView(
        name=name,
        provider="claude",
        plan=None,
        priority=0,
        state=state,  # type: ignore[arg-type]
        state_reason="",
        state_until=None,
        windows=(),
        in_flight=0,
        requests_today=0,
        tokens_today=TokenUsage(),
        tokens_total=TokenUsage(),
        last_used=last_used,
        pinned_conversations=0,
    )


def test_only_usable_idle_accounts_are_polled() -> None:
    """Cooling, backing-off, disabled, needs-re-login and recently used accounts are not probed."""
    views = [
        view("claude/idle"),
        view("claude/cooling", "cooling"),
        view("claude/backoff", "backoff"),
        view("claude/relogin", "needs_relogin"),
        view("claude/off", "disabled"),
        view("claude/busy", last_used=NOW - 10),
        view("claude/quiet", last_used=NOW - RECENT_USE_S - 1),
    ]
    assert PollSchedule().due(views, NOW) == ["claude/idle", "claude/quiet"]


def test_at_most_one_poll_per_interval() -> None:
    """An account polled a moment ago is not polled again until the interval has passed."""
    schedule = PollSchedule()
    schedule.polled("claude/a", 200, NOW)
    assert schedule.due([view("claude/a")], NOW + MIN_INTERVAL_S - 1) == []
    assert schedule.due([view("claude/a")], NOW + MIN_INTERVAL_S) == ["claude/a"]


def test_usage_endpoint_429_backs_off_and_doubles() -> None:
    """When the usage endpoint itself rate-limits, polls of that account back off, doubling."""
    schedule = PollSchedule()
    schedule.polled("claude/a", 429, NOW)
    assert schedule.due([view("claude/a")], NOW + BACKOFF_FIRST_S - 1) == []
    assert schedule.due([view("claude/a")], NOW + BACKOFF_FIRST_S) == ["claude/a"]
    schedule.polled("claude/a", 429, NOW + BACKOFF_FIRST_S)
    assert schedule.due([view("claude/a")], NOW + 2 * BACKOFF_FIRST_S) == []
    schedule.polled("claude/a", 200, NOW + 4 * BACKOFF_FIRST_S)
    assert schedule.backoff_until == {}


def test_forget_drops_removed_accounts() -> None:
    """Accounts removed from the pool leave the schedule."""
    schedule = PollSchedule()
    schedule.polled("claude/gone", 429, NOW)
    schedule.forget(set())
    assert attrs.asdict(schedule) == {"last_poll": {}, "backoff_until": {}, "backoff_s": {}}
