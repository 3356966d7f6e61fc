"""The attempt loop that HTTP requests and WebSocket handshakes share: the thin shell that
carries out ``proxy.attempts.AttemptPlan``'s decisions.

```
choose (accounts.Pool) -> plan.next -> Wait: sleep | GiveUp: transport.give_up | Try:
    fresh token (credentials.Refresher) -> transport.send -> None: the client has its answer
        RefreshAndRetry: refresh once, send again | FailOver: report, choose the next account
```
A transport (``proxy.forward.HttpTry``, ``proxy.websocket.SocketTry``) knows how to try one
account and how the client hears that none could answer; it asks ``plan.failed`` what a
refusal means while the upstream's answer is still in hand (a ``PassOn`` is relayed as is).
"""

from __future__ import annotations

import logging
from typing import Protocol

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Exhausted, Lease
from trio_pool.auth.internal import ACCOUNT_HEADER, is_internal
from trio_pool.credentials import gemini_setup
from trio_pool.credentials.registry import PoolAccount
from trio_pool.errors import UpstreamError
from trio_pool.logs import bind
from trio_pool.providers.base import (
    AccountAction,
    ConversationKey,
    Credentials,
    ErrorShape,
    Outcome,
    OutcomeKind,
    Provider,
    QuotaReading,
    Route,
)
from trio_pool.proxy import answers
from trio_pool.proxy.attempts import (
    AttemptPlan,
    FailOver,
    GiveUp,
    PassOn,
    RefreshAndRetry,
    Try,
    Wait,
)
from trio_pool.proxy.relay import RelayResult
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import Headers
from trio_pool.services import Services
from trio_pool.usage.ledger import Tally, failure_text, hash_key

log = logging.getLogger(__name__)


class Transport(Protocol):
    """How one account is tried, and how the client hears that none could answer."""

    async def send(
        self, lease: Lease, account: PoolAccount, credentials: Credentials
    ) -> FailOver | RefreshAndRetry | None:
        """Try ``account``. None: the client has its answer (relayed, or passed on as it
        came) and the lease is reported. A verdict: nothing reached the client yet."""
        ...

    async def give_up(self, give_up: GiveUp) -> None:
        """No account answered (or none was free): answer the client."""
        ...


@attrs.define(eq=False)
class Request:
    """One client request on its way through the pool: what all its attempts share."""

    services: Services
    exchange: Exchange
    route: Route
    provider: Provider  # the upstream's: prepares, classifies and observes
    shape: ErrorShape  # whose error shapes the client hears (its own API's)
    key: ConversationKey | None
    tally: Tally
    plan: AttemptPlan
    internal: bool  # the proxy's own call (Try it): it hears which account answered

    def report(self, lease: Lease, outcome: Outcome) -> None:
        # The pool ignores a second report of a lease: the first outcome stands.
        self.services.pool.report(lease, outcome, clock.now())

    def observe(self, account: str, quota: QuotaReading, now: float) -> None:
        """A quota reading; in shared mode, what the user's request moved is theirs."""
        pool, user = self.services.pool, self.tally.user
        if user is None:
            pool.observe(account, quota, now)
            return
        before = pool.window_use(account, now)
        pool.observe(account, quota, now)
        size = max(1, pool.provider_size(account))
        limiter = self.services.directory.limiter
        for window, (used, window_s) in pool.window_use(account, now).items():
            moved = used - before.get(window, (0.0, None))[0]
            if moved > 0 and window_s:
                share = moved / size
                limiter.moved(
                    user, self.tally.provider, window, share=share, window_s=window_s, now=now
                )

    def refused(
        self, lease: Lease, status: int, headers: Headers, body: bytes
    ) -> FailOver | RefreshAndRetry | None:
        """A non-2xx answer: another try (fail over, refresh), or None when the client is to
        hear it (the lease is reported then)."""
        now = clock.now()
        outcome = self.provider.classify(status, headers, body, now)
        verdict = self.plan.failed(lease, outcome, now)
        if not isinstance(verdict, PassOn):
            return verdict
        self.report(lease, outcome)
        return None

    async def upstream_failed(
        self, lease: Lease, account: str, exc: UpstreamError
    ) -> FailOver | RefreshAndRetry | None:
        """A try that got no answer (connect, timeout, reset) before the client heard
        anything: another account while the plan allows, else the error in the client's
        shape."""
        outcome = Outcome(OutcomeKind.TRANSIENT, None, reason=str(exc))
        verdict = self.plan.failed(lease, outcome, clock.now(), error=exc)
        if not isinstance(verdict, PassOn):
            return verdict
        self.report(lease, outcome)
        self.tally.status = await answers.send_error(
            self.exchange, self.shape, exc.status_hint, f"{account}: {exc}", "upstream_error"
        )
        return None

    def relay_starts(self, account: str, status: int, headers: Headers) -> RelayResult:
        """A 2xx head: its quota reading, and the result the relay fills in."""
        now = clock.now()
        quota = self.provider.read_quota(headers, now)
        if quota is not None:
            self.observe(account, quota, now)
        # Observed here, when it was read: the OK outcome does not carry it to the report
        # again (that cost a second merge per request and dated the reading at the end).
        return RelayResult(Outcome(OutcomeKind.OK, status))

    def relay_ended(
        self, lease: Lease, account: str, status: int, started: float, result: RelayResult
    ) -> None:
        """What a relayed answer showed, to the pool, the tally and the log (``status``: the
        one the client got). Also after a client hang-up: tokens already spent count."""
        now = clock.now()
        pool = self.services.pool
        if result.quota is not None:
            self.observe(account, result.quota, now)
        if result.usage is not None:
            pool.record_usage(account, result.usage, now)
        if result.pin is not None:
            # A Gemini operation only the account that started it can poll.
            pool.pin(self.route.provider, result.pin, account, now)
        self.tally.usage, self.tally.bytes = result.usage, result.bytes_sent
        self.report(lease, result.outcome)
        answers.log_done(self.exchange.head, status, started, result)

    def account_headers(self, account: str) -> list[tuple[str, str]]:
        """The answering account, told only to the proxy's own calls (the dashboard's Try it)."""
        return [(ACCOUNT_HEADER, account)] if self.internal else []


def new_request(
    services: Services,
    exchange: Exchange,
    route: Route,
    provider: Provider,
    shape: ErrorShape,
    *,
    key: ConversationKey | None,
    user: str | None,
    model: str | None,
    replayable: bool,
    held: int = 0,
) -> Request:
    """A request's record and plan, from the moment it was routed and admitted."""
    routing = services.config.routing
    now = clock.now()
    tally = Tally(
        route.provider,
        now,
        trio.current_time(),
        model=model,
        conversation=hash_key(key.value if key is not None else None),
        user=user,
        client_format=route.client_format,
    )
    plan = AttemptPlan(
        route.provider,
        routing.max_attempts,
        now + routing.queue_wait_s,
        replayable,
        services.pool,
        services.queue,
        held,
    )
    internal = is_internal(services.self_call.token, exchange.head)
    return Request(services, exchange, route, provider, shape, key, tally, plan, internal)


async def run_request(request: Request, transport: Transport) -> None:
    """Try accounts until the client has an answer; the request's events (start, end) go
    out whatever happens. One coroutine on purpose: every resume of the relay below passes
    through each frame of the await chain, so the loop adds no frame of its own."""
    services, plan, tally, route = request.services, request.plan, request.tally, request.route
    pool = services.pool
    services.events.started(tally, request.exchange.head.path)
    try:
        while not plan.spent:
            now = clock.now()
            # The request's model: an account whose window for it is spent is passed over.
            model = tally.model
            decision = pool.choose(
                route.provider,
                request.key,
                now,
                exclude=plan.excluded,
                use=route.inference,
                model=model,
            )
            wake = (
                pool.next_change(route.provider, now, model)
                if isinstance(decision, Exhausted)
                else None
            )
            match plan.next(decision, wake, now):
                case Wait(until=until):
                    await trio.sleep_until(clock.to_trio_deadline(until))
                case GiveUp() as give_up:
                    if give_up.queue_full:
                        log.warning("proxy.queue.full requests=%d", services.queue.requests)
                    await transport.give_up(give_up)
                    return
                case Try(lease=lease):
                    tally.attempts, tally.account = plan.attempts, lease.account
                    account = services.registry.get(lease.account)
                    if account is None:  # it left the pool a moment ago: the lease ends
                        plan.removed(lease)
                        request.report(lease, Outcome(OutcomeKind.CLIENT_ERROR, reason="removed"))
                        continue
                    bind(account=lease.account)
                    outcome = await _try(request, transport, lease, account)
                    if outcome is None:
                        services.events.attempted(
                            route.provider, lease.account, "answered", failover=False
                        )
                        return
                    _failed_over(request, lease, outcome)
        await transport.give_up(plan.give_up(clock.now()))
    finally:
        plan.close()
        services.events.finished(tally)


def _failed_over(request: Request, lease: Lease, outcome: Outcome) -> None:
    """The try failed before the client heard anything: say so, then the next account."""
    reason = request.plan.failures[-1].reason
    request.tally.failures.append(failure_text(lease.account, reason))
    provider = request.route.provider
    request.services.events.attempted(provider, lease.account, outcome.kind.value, failover=True)
    log.info(
        "proxy.failover account=%s kind=%s status=%s reason=%s",
        lease.account,
        outcome.kind.value,
        outcome.status,
        outcome.reason,
    )


async def _try(
    request: Request, transport: Transport, lease: Lease, account: PoolAccount
) -> Outcome | None:
    """One account's try. None: an answer reached the client. An Outcome: fail over."""
    services = request.services
    try:
        credentials = await services.refresher.fresh_credentials(account)
        set_up = await gemini_setup.set_up(
            services.client, services.pool, account, credentials, services.upstreams
        )
        if isinstance(set_up, AccountAction):
            # Only the account's owner can fix this one: it leaves rotation, next account.
            action = Outcome(OutcomeKind.ACCOUNT_ACTION, None, set_up.message, action=set_up)
            request.plan.unusable(lease, action)
            request.report(lease, action)
            return action
        credentials = set_up
        while True:
            verdict = await transport.send(lease, account, credentials)
            if verdict is None:
                return None
            if isinstance(verdict, RefreshAndRetry):
                # A 401 usually means an expired or revoked access token: refresh once
                # (single-flight) and retry this same account once.
                if await services.refresher.refresh(account, reason="401", stale=credentials):
                    credentials = account.credentials
                    continue
                # The lease's one refresh is spent: the plan records the failure over.
                request.plan.failed(lease, verdict.outcome, clock.now())
            request.report(lease, verdict.outcome)
            return verdict.outcome
    finally:
        # Cancelled (client hung up) or failed unexpectedly: the lease must still end.
        if services.pool.holds(lease):
            request.report(lease, Outcome(OutcomeKind.CLIENT_ERROR, reason="request ended"))
