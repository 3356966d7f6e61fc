"""Shared mode's pure parts: keys, sessions, the password hash, the throttle, user limits."""

from __future__ import annotations

import pytest

from trio_pool.auth.keys import key_hash, key_prefix, looks_like_key, new_key, presented_key
from trio_pool.auth.limits import UsageLimiter
from trio_pool.auth.model import Caller, UserLimits
from trio_pool.auth.password import hash_password, verify_password
from trio_pool.auth.session import Session, cookie_value, set_cookie, sign, verify
from trio_pool.auth.throttle import AttemptThrottle
from trio_pool.server.messages import RequestHead

SECRET = b"s" * 32
NOW = 1_800_000_000.0


def test_new_keys_are_random_and_only_their_prefix_is_shown() -> None:
    """Keys are tp- plus 40 url-safe characters; lists show four of them."""
    first, second = new_key(), new_key()
    assert first != second
    assert looks_like_key(first)
    assert key_prefix(first) == first[:7] + "…"
    assert key_hash(first) != key_hash(second)
    assert first not in repr(key_hash(first))


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("x-trio-pool-key", "tp-k"),
        ("x-api-key", "tp-k"),
        ("x-goog-api-key", "tp-k"),
        ("authorization", "Bearer tp-k"),
        ("authorization", "bearer  tp-k "),
    ],
)
def test_the_key_is_found_wherever_a_cli_puts_it(name: str, value: str) -> None:
    """Claude's x-api-key or Bearer, Gemini's Bearer, Codex's provider header all count."""
    head = RequestHead("POST", "/v1/messages", ((name, value),))
    assert presented_key(head) == "tp-k"


def test_a_pool_key_wins_over_the_users_own_provider_key() -> None:
    """Claude Code with ANTHROPIC_API_KEY set sends it as x-api-key beside the pool key."""
    key = new_key()
    head = RequestHead(
        "POST",
        "/v1/messages",
        (("x-api-key", "sk-ant-api03-own"), ("authorization", f"Bearer {key}")),
    )
    assert presented_key(head) == key


def test_no_key_is_none() -> None:
    """A request with no credential header presents no key."""
    assert presented_key(RequestHead("GET", "/", (("authorization", "Basic x"),))) is None


def test_a_session_cookie_round_trips_and_cannot_be_forged_or_outlive_itself() -> None:
    """Signed, tamper-evident, expiring; the caller comes back as it went in."""
    session = Session(Caller("user", "ann"), 3, "u1")
    cookie = sign(SECRET, session, NOW)
    assert verify(SECRET, cookie, NOW + 10) == session
    assert verify(b"x" * 32, cookie, NOW + 10) is None
    version, _payload, mac = cookie.split(".")
    forged = sign(SECRET, Session(Caller("admin")), NOW).split(".")[1]
    assert verify(SECRET, f"{version}.{forged}.{mac}", NOW) is None
    assert verify(SECRET, cookie, NOW + 8 * 86400) is None
    assert verify(SECRET, "garbage", NOW) is None


def test_the_cookie_is_httponly_and_samesite_strict() -> None:
    """The attributes the issue asks for, and our cookie found among others."""
    header = set_cookie("v", secure=False)
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert "Secure" not in header
    assert "Secure" in set_cookie("v", secure=True)
    assert cookie_value(["a=1; tp_session=abc; b=2"]) == "abc"


def test_the_password_hash_is_scrypt_and_verifies_only_the_password() -> None:
    """A memory-hard hash with a salt: two hashes of one password differ."""
    stored = hash_password("correct horse battery")
    assert stored.startswith("scrypt$32768$8$1$")
    assert "correct horse" not in stored
    assert verify_password("correct horse battery", stored)
    assert not verify_password("correct horse battery!", stored)
    assert hash_password("correct horse battery") != stored
    assert not verify_password("x", "not-a-hash")


def test_the_throttle_locks_a_client_out_after_five_failures_then_lets_it_back() -> None:
    """Five wrong codes in 15 minutes lock that client (only) until the oldest ages out."""
    throttle = AttemptThrottle()
    for i in range(5):
        assert throttle.retry_after("1.2.3.4", NOW + i) is None
        throttle.failed("1.2.3.4", NOW + i)
    wait = throttle.retry_after("1.2.3.4", NOW + 5)
    assert wait == pytest.approx(900 - 5)
    assert throttle.retry_after("5.6.7.8", NOW + 5) is None
    assert throttle.retry_after("1.2.3.4", NOW + 901) is None


def test_the_throttle_locks_everyone_after_many_failures_from_many_clients() -> None:
    """A guesser with many addresses is stopped by the global count."""
    throttle = AttemptThrottle()
    for i in range(50):
        throttle.failed(f"10.0.0.{i}", NOW)
    assert throttle.retry_after("10.9.9.9", NOW + 1) == pytest.approx(3599)


def test_rpm_limit_refuses_the_request_over_the_limit_with_when_to_retry() -> None:
    """Three per minute: the fourth is refused, naming the limit, until a minute has passed."""
    limiter, limits = UsageLimiter(), UserLimits(rpm=3)
    for i in range(3):
        assert limiter.admit("ann", "claude", limits, NOW + i) is None
        limiter.started("ann", NOW + i)
        limiter.ended("ann")
    refusal = limiter.admit("ann", "claude", limits, NOW + 10)
    assert refusal is not None
    assert refusal.limit == "rpm"
    assert "3 requests per minute" in refusal.message
    assert refusal.retry_after == pytest.approx(50)
    assert limiter.admit("ann", "claude", limits, NOW + 60) is None
    assert limiter.admit("bob", "claude", limits, NOW + 10) is None


def test_stream_limit_counts_requests_in_flight() -> None:
    """Two at once: a third waits until one ends."""
    limiter, limits = UsageLimiter(), UserLimits(streams=2)
    for _ in range(2):
        limiter.started("ann", NOW)
    refusal = limiter.admit("ann", "codex", limits, NOW)
    assert refusal is not None
    assert refusal.limit == "streams"
    limiter.ended("ann")
    assert limiter.admit("ann", "codex", limits, NOW) is None


def test_share_limit_counts_what_the_user_moved_within_the_window() -> None:
    """25 % of the pool's 5 h quota: refused once reached, allowed again when it ages out."""
    limiter, limits = UsageLimiter(), UserLimits(share_pct=25)
    limiter.moved("ann", "claude", "5h", share=0.2, window_s=18000, now=NOW)
    assert limiter.admit("ann", "claude", limits, NOW + 1) is None
    limiter.moved("ann", "claude", "5h", share=0.06, window_s=18000, now=NOW + 2)
    refusal = limiter.admit("ann", "claude", limits, NOW + 3)
    assert refusal is not None
    assert refusal.limit == "share"
    assert "26.0 %" in refusal.message
    assert "5h" in refusal.message
    assert limiter.admit("ann", "codex", limits, NOW + 3) is None
    assert limiter.admit("ann", "claude", limits, NOW + 18001) is None


def test_limits_are_checked_for_sense() -> None:
    """Zero or negative limits and shares over 100 % are named problems."""
    assert UserLimits(rpm=0, streams=-1, share_pct=120).problems() == [
        "rpm: must be from 1 to 1000000000 (or null for no limit)",
        "streams: must be from 1 to 1000000000 (or null for no limit)",
        "share_pct: must be more than 0 and at most 100 (or null)",
    ]
