"""The attempt policy (design.md §3.2, §3.4) as a pure object, with explicit times."""

from __future__ import annotations

import attrs

from tests.accounts.helpers import T0, exhausted, lease, make_pool, outcome
from trio_pool.accounts.pool import Exhausted, Lease
from trio_pool.accounts.queue_budget import QueueBudget
from trio_pool.errors import UpstreamConnectError, UpstreamTimeout
from trio_pool.providers.base import OutcomeKind
from trio_pool.proxy.attempts import (
    MIN_QUEUE_SLEEP_S,
    AttemptPlan,
    FailOver,
    GiveUp,
    PassOn,
    RefreshAndRetry,
    Try,
    Wait,
)

A, B, C = "codex/a", "codex/b", "codex/c"


@attrs.define
class Peers:
    """Accounts grouped by plan; ``usable``: the plans that have an account free now."""

    plans: dict[str, str] = attrs.field(factory=dict)
    usable: set[str] = attrs.field(factory=set)

    def same_plan(self, name: str) -> frozenset[str]:
        plan = self.plans.get(name)
        return frozenset(n for n, p in self.plans.items() if p == plan)

    def other_plan_usable(self, name: str, now: float) -> bool:
        return bool(self.usable - {self.plans.get(name)})


def plan(
    *,
    replayable: bool = True,
    max_attempts: int = 4,
    queue_wait_s: float = 10.0,
    peers: Peers | None = None,
    queue: QueueBudget | None = None,
    held: int = 0,
) -> AttemptPlan:
    return AttemptPlan(
        "codex",
        max_attempts,
        T0 + queue_wait_s,
        replayable,
        peers or Peers(),
        queue or QueueBudget(64, 1 << 20),
        held,
    )


def leased(name: str = A, lease_id: int = 1) -> Lease:
    return Lease(name, "codex", None, pinned=False, fast=False, lease_id=lease_id)


def test_a_lease_is_tried_and_counts_as_an_attempt() -> None:
    """The pool's lease becomes a Try; after max_attempts the plan is spent."""
    attempts = plan(max_attempts=2)
    first = lease(make_pool("a").choose("codex", None, T0))
    assert attempts.next(first, None, T0) == Try(first)
    assert attempts.attempts == 1
    assert not attempts.spent
    attempts.next(leased(B, 2), None, T0)
    assert attempts.spent


def test_no_account_and_nothing_coming_back_is_a_429_naming_each_account() -> None:
    """Every account busy, none back in time: 429, Retry-After to the reset, every reason."""
    reasons = ((A, "cooling until later"), (B, "needs re-login"))
    got = plan().next(Exhausted(T0 + 3600, reasons), T0 + 3600, T0)
    assert isinstance(got, GiveUp)
    assert (got.status, got.kind, got.retry_after_s) == (429, "pool_exhausted", 3600)
    assert got.message == (
        "every codex account in the pool is unavailable: "
        "codex/a: cooling until later; codex/b: needs re-login"
    )


def test_a_provider_without_accounts_is_a_503() -> None:
    """No account of the provider at all: 503 saying where login files go."""
    got = plan().next(exhausted(make_pool().choose("codex", None, T0)), None, T0)
    assert got == GiveUp(
        503, "no_accounts", "no codex accounts in the pool (add login files to pool/codex/)"
    )


def test_a_cooldown_ending_within_the_queue_wait_is_waited_for() -> None:
    """wake <= queue deadline: Wait until it; the tried accounts may be tried again after."""
    attempts = plan(queue_wait_s=10.0)
    attempts.failed(leased(A), outcome(OutcomeKind.TRANSIENT, status=503), T0)
    assert attempts.tried == {A}
    got = attempts.next(Exhausted(T0 + 4, ((A, "backoff"),)), T0 + 4, T0)
    assert got == Wait(T0 + 4)
    assert attempts.tried == set()
    assert attempts.attempts == 0  # a wait is no attempt


def test_a_wake_time_already_past_never_spins() -> None:
    """The pool says "now" but refused: the wait is still MIN_QUEUE_SLEEP_S."""
    got = plan().next(Exhausted(T0, ()), T0 - 1, T0)
    assert got == Wait(T0 + MIN_QUEUE_SLEEP_S)


def test_a_cooldown_ending_after_the_queue_wait_is_not_waited_for() -> None:
    """wake past the deadline: answer now, with the reset as Retry-After."""
    got = plan(queue_wait_s=10.0).next(Exhausted(T0 + 11, ((A, "cooling"),)), T0 + 11, T0)
    assert isinstance(got, GiveUp)
    assert (got.status, got.retry_after_s) == (429, 11)


def test_a_full_wait_queue_refuses_at_once_and_a_place_is_given_back() -> None:
    """Past the global queue cap a request gets a 429 naming the queue; close() leaves it."""
    queue = QueueBudget(max_requests=1, max_bytes=1000)
    first, second = plan(queue=queue, held=600), plan(queue=queue, held=600)
    busy = Exhausted(T0 + 1, ((A, "backoff"),))
    assert isinstance(first.next(busy, T0 + 1, T0), Wait)
    refused = second.next(busy, T0 + 1, T0)
    assert isinstance(refused, GiveUp)
    assert refused.queue_full
    assert "queue: trio-pool's wait queue is full (1 requests, 0 KiB" in refused.message
    first.close()
    first.close()  # twice is harmless
    assert (queue.requests, queue.bytes) == (0, 0)
    assert isinstance(second.next(busy, T0 + 1, T0), Wait)


def test_the_first_401_of_a_lease_refreshes_and_the_second_fails_over() -> None:
    """AUTH: refresh once and retry the same account; a second 401 goes to the next one."""
    attempts = plan()
    denied = outcome(OutcomeKind.AUTH, status=401)
    assert attempts.failed(leased(A, 1), denied, T0) == RefreshAndRetry(denied)
    assert attempts.tried == set()
    assert attempts.failed(leased(A, 1), denied, T0) == FailOver(denied)
    assert attempts.tried == {A}
    # A new lease of the account (after a wait) gets its own refresh.
    assert attempts.failed(leased(A, 7), denied, T0) == RefreshAndRetry(denied)


def test_an_account_fault_fails_over_and_excludes_the_account() -> None:
    """Quota, throttle, forbidden, 5xx and account actions all go to the next account."""
    for kind in (
        OutcomeKind.QUOTA,
        OutcomeKind.THROTTLED,
        OutcomeKind.FORBIDDEN,
        OutcomeKind.TRANSIENT,
        OutcomeKind.ACCOUNT_ACTION,
    ):
        attempts = plan()
        failed = outcome(kind, status=429, reason="why")
        assert attempts.failed(leased(A), failed, T0) == FailOver(failed)
        assert attempts.excluded == frozenset({A})
        assert [(f.account, f.reason) for f in attempts.failures] == [(A, "why")]


def test_a_client_error_is_passed_on_as_it_came() -> None:
    """A 400 or 404 is not the account's fault: the client gets it, nobody is excluded."""
    attempts = plan()
    bad = outcome(OutcomeKind.CLIENT_ERROR, status=400)
    assert attempts.failed(leased(A), bad, T0) == PassOn(bad)
    assert attempts.tried == set()
    assert attempts.failures == []


def test_a_streaming_body_is_never_sent_twice() -> None:
    """Not replayable: even a 401 or a quota 429 is passed on, with no refresh."""
    attempts = plan(replayable=False)
    for kind in (OutcomeKind.AUTH, OutcomeKind.QUOTA, OutcomeKind.TRANSIENT):
        failed = outcome(kind, status=401)
        assert attempts.failed(leased(A), failed, T0) == PassOn(failed)


def test_an_account_its_owner_must_fix_fails_over_before_anything_is_sent() -> None:
    """Needs action (Gemini set-up): the next account, even for a body sent only once."""
    attempts = plan(replayable=False)
    action = outcome(OutcomeKind.ACCOUNT_ACTION, reason="set a project")
    assert attempts.unusable(leased(A), action) == FailOver(action)
    assert attempts.excluded == frozenset({A})
    assert [f.reason for f in attempts.failures] == ["set a project"]


def test_wrong_plan_fails_over_to_another_plan_only_when_one_is_usable() -> None:
    """The model is not on this plan: skip every account on it, if another plan can serve."""
    peers = Peers(plans={A: "plus", B: "plus", C: "pro"}, usable={"pro"})
    attempts = plan(peers=peers)
    wrong = outcome(OutcomeKind.WRONG_PLAN, status=400)
    assert attempts.failed(leased(A), wrong, T0) == FailOver(wrong)
    assert attempts.excluded == frozenset({A, B})
    alone = plan(peers=Peers(plans={A: "plus", C: "pro"}, usable={"plus"}))
    assert alone.failed(leased(A), wrong, T0) == PassOn(wrong)


def test_giving_up_after_quota_is_a_429_until_the_reset() -> None:
    """Every try hit quota or throttling: 429 (waiting helps) with the last Retry-After."""
    attempts = plan()
    attempts.failed(leased(A), outcome(OutcomeKind.QUOTA, reason="limit", retry_at=T0 + 90), T0)
    got = attempts.give_up(T0)
    assert (got.status, got.kind, got.retry_after_s) == (429, "pool_exhausted", 90)
    assert got.message == "1 account(s) tried, none answered: codex/a: limit"
    throttled = plan()
    throttled.failed(leased(B), outcome(OutcomeKind.THROTTLED, status=529), T0)
    assert throttled.give_up(T0).retry_after_s == 1.0


def test_giving_up_after_a_timeout_is_a_504_by_the_error_type() -> None:
    """The last try timed out: 504; a refused connection: 502. The type decides, not text."""
    timed_out, refused = plan(), plan()
    transient = outcome(OutcomeKind.TRANSIENT, reason="no answer")
    timed_out.failed(leased(A), transient, T0, error=UpstreamTimeout("slow"))
    refused.failed(leased(A), transient, T0, error=UpstreamConnectError("timed out in text"))
    assert (timed_out.give_up(T0).status, refused.give_up(T0).status) == (504, 502)
    assert plan().give_up(T0) == GiveUp(
        502, "upstream_error", "0 account(s) tried, none answered: "
    )


def test_an_exhausted_answer_names_the_accounts_that_failed_too() -> None:
    """Accounts tried in this request are named with why their try failed."""
    attempts = plan()
    attempts.failed(leased(A), outcome(OutcomeKind.TRANSIENT, reason="boom"), T0)
    got = attempts.next(Exhausted(None, ((B, "needs re-login"),)), None, T0)
    assert isinstance(got, GiveUp)
    assert got.retry_after_s is None
    assert got.message.endswith("codex/a: boom; codex/b: needs re-login")
