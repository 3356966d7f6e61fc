"""The attempt policy of one request, as a pure object: which account next, when to wait,
when to give up, and what a failed try means (design.md §3.2, §3.4).

```
next(decision, wake, now):   Lease -> Try | Exhausted -> Wait (a cooldown ends soon enough)
                                                      | GiveUp (429 / 503, naming each account)
unusable(lease, outcome):    the account cannot serve (its owner must act)  -> FailOver
failed(lease, outcome, now): AUTH, body replayable, first 401 of this lease -> RefreshAndRetry
                             an account's fault, body replayable            -> FailOver
                             anything else (a 400, or the body is gone)     -> PassOn
give_up(now):                every try failed -> GiveUp (429 / 502 / 504 by the last failure)
```
HTTP (``proxy.forward``) and WebSocket handshakes (``proxy.websocket``) both drive it
through ``proxy.attempt_loop``. No trio, no I/O, no clock: times are unix seconds passed
in as ``now``; the shell sleeps until ``Wait.until`` and calls back in. Like
``accounts.pool``, every rule about failing over lives here and nowhere else.
"""

from __future__ import annotations

from typing import Protocol

import attrs

from trio_pool.accounts.pool import Exhausted, Lease
from trio_pool.accounts.queue_budget import QueueBudget
from trio_pool.errors import UpstreamError, UpstreamTimeout
from trio_pool.providers.base import Outcome, OutcomeKind, ProviderName

# Never sleep in a tight loop when the pool says "usable again now" but still refuses.
MIN_QUEUE_SLEEP_S = 0.05


class Peers(Protocol):
    """What the plan asks the pool about an account's plan-mates (``accounts.Pool`` fits)."""

    def same_plan(self, name: str) -> frozenset[str]: ...

    def other_plan_usable(self, name: str, now: float) -> bool: ...


# -- what to do next --------------------------------------------------------------------------


@attrs.frozen
class Try:
    """Send the request with this lease's account."""

    lease: Lease


@attrs.frozen
class Wait:
    """No account now, one comes back before the queue deadline: sleep until ``until``."""

    until: float  # unix seconds


@attrs.frozen
class GiveUp:
    """Answer the client with an error of our own, in its provider's shape."""

    status: int  # 429 (wait helps), 503 (no accounts), 502 / 504 (the upstreams failed)
    kind: str  # the error's type in the provider's shape
    message: str  # names each account and why it could not answer
    retry_after_s: float | None = None
    queue_full: bool = False  # refused because too many requests wait already


# -- what a failed try means ------------------------------------------------------------------


@attrs.frozen
class RefreshAndRetry:
    """A 401: refresh the token (single-flight) and retry this same account once."""

    outcome: Outcome


@attrs.frozen
class FailOver:
    """The account's fault, and the body can be sent again: try the next account."""

    outcome: Outcome


@attrs.frozen
class PassOn:
    """Not the account's fault (or the body is gone): the client gets this answer as it is."""

    outcome: Outcome


Verdict = RefreshAndRetry | FailOver | PassOn


@attrs.frozen
class Failure:
    account: str
    reason: str
    outcome: Outcome
    status_hint: int | None  # of the error that ended the try before any answer, if one did


@attrs.define(eq=False)
class AttemptPlan:
    """One request's way through the pool. ``replayable``: the body is held whole, so it can
    go to another account; ``held``: its bytes, counted by the wait queue."""

    provider: ProviderName
    max_attempts: int
    queue_deadline: float  # unix seconds: no waiting for an account past this
    replayable: bool
    peers: Peers
    queue: QueueBudget
    held: int = 0
    attempts: int = 0
    tried: set[str] = attrs.field(factory=set)  # accounts not to choose again (until a wait)
    failures: list[Failure] = attrs.field(factory=list)
    queued: bool = False  # holding a place in the wait queue: ``close`` gives it back
    _refreshed: int = -1  # the lease whose one refresh is spent (one lease at a time)

    @property
    def spent(self) -> bool:
        """Every attempt is used up: ``give_up`` is next."""
        return self.attempts >= self.max_attempts

    @property
    def excluded(self) -> frozenset[str]:
        return frozenset(self.tried)

    def next(
        self, decision: Lease | Exhausted, wake: float | None, now: float
    ) -> Try | Wait | GiveUp:
        """What to do with the pool's answer. ``wake``: when it may change (``next_change``),
        asked only when it had no account. A wait is no attempt, and after one every account
        may be tried again."""
        if isinstance(decision, Lease):
            self.attempts += 1
            return Try(decision)
        if wake is None or wake > self.queue_deadline:
            return self._exhausted(decision, now)
        if not self.queued:
            if not self.queue.try_enter(self.held):
                full = attrs.evolve(
                    decision, reasons=(*decision.reasons, ("queue", self.queue.refusal()))
                )
                return attrs.evolve(self._exhausted(full, now), queue_full=True)
            self.queued = True
        self.tried.clear()
        return Wait(max(wake, now + MIN_QUEUE_SLEEP_S))

    def removed(self, lease: Lease) -> None:
        """The leased account left the pool a moment ago: not again."""
        self.tried.add(lease.account)

    def unusable(self, lease: Lease, outcome: Outcome) -> FailOver:
        """The account turned out unable to serve before anything was sent (its owner must
        act first): the next account, whether or not the body could be sent again."""
        self.tried.add(lease.account)
        self.failures.append(
            Failure(lease.account, outcome.reason or outcome.kind.value, outcome, None)
        )
        return FailOver(outcome)

    def failed(
        self, lease: Lease, outcome: Outcome, now: float, *, error: UpstreamError | None = None
    ) -> Verdict:
        """What a try that got ``outcome`` (not a 2xx) means. ``error``: it ended with no
        answer at all (connect error, timeout), which then decides between 502 and 504."""
        kind = outcome.kind
        if not self.replayable:
            return PassOn(outcome)
        if kind is OutcomeKind.AUTH and lease.lease_id != self._refreshed:
            self._refreshed = lease.lease_id
            return RefreshAndRetry(outcome)
        wrong_plan = kind is OutcomeKind.WRONG_PLAN
        # Another plan may offer the model; with none usable, the client gets the answer.
        if not (
            kind.fails_over or (wrong_plan and self.peers.other_plan_usable(lease.account, now))
        ):
            return PassOn(outcome)
        self.tried.add(lease.account)
        if wrong_plan:
            # Its plan lacks what was asked: so do the others on that plan.
            self.tried |= self.peers.same_plan(lease.account)
        hint = None if error is None else error.status_hint
        reason = outcome.reason or kind.value
        self.failures.append(Failure(lease.account, reason, outcome, hint))
        return FailOver(outcome)

    def give_up(self, now: float) -> GiveUp:
        """Every attempt failed: 429 when the last failure was quota or throttling (waiting
        helps), 504 when it was a timeout, else 502."""
        detail = "; ".join(f"{f.account}: {f.reason}" for f in self.failures)
        message = f"{len(self.failures)} account(s) tried, none answered: {detail}"
        last = self.failures[-1] if self.failures else None
        if last is not None and last.outcome.kind in (OutcomeKind.QUOTA, OutcomeKind.THROTTLED):
            retry_at = last.outcome.retry_at
            retry_after = None if retry_at is None else max(1.0, retry_at - now)
            return GiveUp(429, "pool_exhausted", message, retry_after or 1.0)
        timed_out = last is not None and last.status_hint == UpstreamTimeout.status_hint
        return GiveUp(504 if timed_out else 502, "upstream_error", message)

    def close(self) -> None:
        """The request is done (answered, failed or cancelled): leave the wait queue."""
        if self.queued:
            self.queued = False
            self.queue.leave(self.held)

    def _exhausted(self, decision: Exhausted, now: float) -> GiveUp:
        """No account can take the request: 429 with Retry-After naming each account and
        why, or 503 when the provider has no accounts at all."""
        reasons = dict(decision.reasons)
        reasons.update((f.account, f.reason) for f in self.failures)
        name = self.provider
        if not reasons:
            message = f"no {name} accounts in the pool (add login files to pool/{name}/)"
            return GiveUp(503, "no_accounts", message)
        retry_after = None if decision.retry_at is None else max(1.0, decision.retry_at - now)
        detail = "; ".join(f"{account}: {why}" for account, why in sorted(reasons.items()))
        message = f"every {name} account in the pool is unavailable: {detail}"
        return GiveUp(429, "pool_exhausted", message, retry_after)
