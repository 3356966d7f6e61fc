"""The sign-in throttles as separate buckets (pure, explicit ``now``): M6."""

from __future__ import annotations

from trio_pool.auth.directory import Directory
from trio_pool.auth.throttle import GLOBAL_WINDOW_S, PER_CLIENT, WINDOW_S, SignupRate

NOW = 1_800_000_000.0


def test_many_addresses_lock_sign_up_for_everyone_but_never_the_admin_or_keys() -> None:
    """Ten addresses x five failures: a fresh address may not sign up (global lock), yet it
    may still try the password and a key, whose throttles count per address only."""
    directory = Directory(None)
    for throttle in (directory.join_throttle, directory.password_throttle, directory.key_throttle):
        for n in range(10):
            for _ in range(PER_CLIENT):
                throttle.failed(f"10.0.0.{n}", NOW)
    fresh = "192.0.2.50"
    wait = directory.join_throttle.retry_after(fresh, NOW + 1)
    assert wait is not None
    assert wait <= GLOBAL_WINDOW_S
    assert directory.password_throttle.retry_after(fresh, NOW + 1) is None
    assert directory.key_throttle.retry_after(fresh, NOW + 1) is None
    assert directory.password_throttle.retry_after("10.0.0.3", NOW + 1) is not None


def test_failures_in_one_bucket_leave_the_others_alone() -> None:
    """Five wrong friend codes from one address: its password and key sign-in are open."""
    directory = Directory(None)
    for _ in range(PER_CLIENT):
        directory.join_throttle.failed("127.0.0.1", NOW)
    assert directory.join_throttle.retry_after("127.0.0.1", NOW) is not None
    assert directory.password_throttle.retry_after("127.0.0.1", NOW) is None
    assert directory.key_throttle.retry_after("127.0.0.1", NOW) is None
    assert directory.join_throttle.retry_after("127.0.0.1", NOW + WINDOW_S) is None


def test_sign_ups_are_capped_per_rolling_hour() -> None:
    """N sign-ups in an hour, then a wait until the oldest leaves the window."""
    rate = SignupRate(3)
    for minute in range(3):
        assert rate.retry_after(NOW + 60 * minute) is None
        rate.record(NOW + 60 * minute)
    assert rate.retry_after(NOW + 600) == 3600 - 600
    assert rate.retry_after(NOW + 3600) is None
