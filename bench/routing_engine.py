"""One routing run in virtual time: the proxy's attempt loop over a router and simulated accounts.

Event-driven and single-threaded: a heap of (time, seq, event). A turn arrives, the loop asks
the router for an account (excluding those already tried, queueing while an account comes
back within ``queue_wait_s``, at most ``max_attempts`` tries, as trio_pool.proxy.attempt_loop does),
refreshes the account's token when Refresher.needs_refresh would, and asks the simulated account:
a full window answers the simulator's real 429 headers, which the Claude provider classifies;
otherwise the turn's cost is consumed and the simulator's response headers are read with the
provider's ``read_quota``, observed at once and reported when the answer ends. With the Pool,
the proxy's usage poller runs too (its pure PollSchedule, the simulator's usage answer).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Callable

import attrs

from bench.routing_baselines import Router
from bench.routing_metrics import Metrics
from bench.routing_workload import TOKEN_LIFETIME_S, ConversationPlan, Workload
from trio_pool.accounts.polling import PollSchedule
from trio_pool.accounts.pool import Exhausted, Lease, Pool
from trio_pool.config import RoutingConfig
from trio_pool.credentials.polls import CHECK_EVERY_S, FIRST_CHECK_S
from trio_pool.credentials.refresh import REFRESH_LEAD_S
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import ConversationKey, Outcome, OutcomeKind
from trio_pool.server.messages import RequestHead
from trio_pool.testing import claude as sim_claude
from trio_pool.testing import issue
from trio_pool.testing.accounts import SimAccount

PROVIDER = PROVIDER_REGISTRY["claude"]
QUOTA_BODY = json.dumps(
    {"type": "error", "error": {"type": "rate_limit_error", "message": sim_claude.QUOTA_MESSAGE}}
).encode()
MIN_QUEUE_SLEEP_S = 0.5  # as the proxy: never spin on a wake-up time already past
FAILOVER_S = 0.2  # a failed attempt's round trip


@attrs.define(eq=False)
class _Request:
    conv: int
    turn: int
    key: ConversationKey | None
    tried: set[str] = attrs.field(factory=set)
    attempts: int = 0
    queue_deadline: float = 0.0


@attrs.define(eq=False)
class Engine:
    """Runs one workload against one router; fills a Metrics."""

    router: Router
    routing: RoutingConfig
    sims: dict[str, SimAccount]  # by pool name "claude/<name>"
    plans: list[ConversationPlan]
    metrics: Metrics
    _heap: list[tuple[float, int, Callable[[float], None]]] = attrs.field(factory=list)
    _seq: int = 0
    _live: int = 0  # conversations not finished yet
    _polls: PollSchedule = attrs.field(factory=PollSchedule)

    def at(self, when: float, action: Callable[[float], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (when, self._seq, action))

    def run(self) -> Metrics:
        for index, plan in enumerate(self.plans):
            head = RequestHead(
                "POST", "/v1/messages", (("x-claude-code-session-id", plan.session),)
            )
            key = PROVIDER.conversation_key(head, None)
            self.at(plan.start, self._arrival(_Request(index, 0, key)))
        self._live = len(self.plans)
        if isinstance(self.router, Pool) and self.plans:
            # The proxy's usage poller (trio_pool.credentials.polls) runs beside the traffic.
            self.at(min(p.start for p in self.plans) + FIRST_CHECK_S, self._poll)
        while self._heap:
            when, _, action = heapq.heappop(self._heap)
            self.metrics.tick(when)
            action(when)
        return self.metrics

    def _arrival(self, request: _Request) -> Callable[[float], None]:
        def arrive(now: float) -> None:
            if request.attempts == 0 and not request.tried:
                request.queue_deadline = now + self.routing.queue_wait_s
            self._attempt(request, now)

        return arrive

    def _next_turn(self, request: _Request, now: float) -> None:
        turns = self.plans[request.conv].turns
        following = request.turn + 1
        if following < len(turns):
            nxt = _Request(request.conv, following, request.key)
            self.at(now + turns[following].gap_s, self._arrival(nxt))
        else:
            self._live -= 1

    def _poll(self, now: float) -> None:
        """One round of the usage poller: the accounts its schedule says are due."""
        assert isinstance(self.router, Pool)
        for name in self._polls.due(self.router.accounts(now), now):
            sim = self.sims[name]
            self._refresh_if_due(name, sim, now)
            # On a copy: the simulator's poll answer would start a window's clock.
            probe = attrs.evolve(sim, windows=[attrs.evolve(w) for w in sim.windows])
            body = json.dumps(sim_claude.usage_poll_body(probe, now)).encode()
            reading = PROVIDER.parse_usage(200, body, now)
            if reading is not None:
                self.router.observe(name, reading, now)
            self._polls.polled(name, 200, now)
            self.metrics.usage_polls += 1
        if self._live > 0:
            self.at(now + CHECK_EVERY_S, self._poll)

    def _attempt(self, request: _Request, now: float) -> None:
        plan = self.plans[request.conv].turns[request.turn]
        while request.attempts < self.routing.max_attempts:
            model = self.plans[request.conv].model
            decision = self.router.choose(
                "claude", request.key, now, exclude=frozenset(request.tried), model=model
            )
            if isinstance(decision, Exhausted):
                wake = decision.retry_at
                if wake is not None and wake <= request.queue_deadline:
                    request.tried.clear()
                    self.at(max(wake, now + MIN_QUEUE_SLEEP_S), self._arrival(request))
                    return
                break
            request.attempts += 1
            sim = self.sims[decision.account]
            self._refresh_if_due(decision.account, sim, now)
            if sim.blocking_window(now, model) is not None:
                self._quota_429(decision, sim, now, model)
                request.tried.add(decision.account)
                now += FAILOVER_S
                continue
            self.metrics.served(
                request.conv, decision.account, plan.cost, request.tried, now, model
            )
            sim.consume(plan.cost, now, model)
            reading = PROVIDER.read_quota(tuple(sim_claude.unified_headers(sim, now)), now)
            if reading is not None:
                self.router.observe(decision.account, reading, now)
            done = Outcome(OutcomeKind.OK, 200, quota=reading)
            self.at(now + plan.duration_s, self._end(request, decision, done))
            return
        self.metrics.client_429(request.conv, self.sims, now, self.plans[request.conv].model)
        self._next_turn(request, now)

    def _end(self, request: _Request, lease: Lease, outcome: Outcome) -> Callable[[float], None]:
        def end(now: float) -> None:
            self.router.report(lease, outcome, now)
            self._next_turn(request, now)

        return end

    def _quota_429(self, lease: Lease, sim: SimAccount, now: float, model: str | None) -> None:
        window = sim.blocking_window(now, model)
        headers = sim_claude.unified_headers(sim, now, rejected=True, model=model)
        if window is not None:
            headers.append(("retry-after", str(int(window.reset_after_s(now)) + 1)))
        outcome = PROVIDER.classify(429, tuple(headers), QUOTA_BODY, now)
        self.metrics.upstream_429s += 1
        self.router.report(lease, outcome, now)

    def _refresh_if_due(self, name: str, sim: SimAccount, now: float) -> None:
        """The Refresher's rule: refresh before use when the token expires within the lead."""
        if sim.expires_at - now >= REFRESH_LEAD_S:
            return
        presented = sim.refresh_token
        self.metrics.refresh_call(name, reused=sim.check_refresh(presented) != "current")
        sim.refreshes += 1
        expires_at = now + TOKEN_LIFETIME_S
        sim.rotate(
            access_token=issue.new_access_token(sim, now, expires_at),
            refresh_token=issue.new_refresh_token("claude"),
            expires_at=expires_at,
        )
        self.metrics.rotation(name)


def run(workload: Workload, make_router: Callable[[list[str]], Router], label: str) -> Metrics:
    """Run ``workload`` once with the router ``make_router(account names)`` builds."""
    sims = {f"claude/{spec.name}": spec.build() for spec in workload.accounts}
    routing = RoutingConfig()
    metrics = Metrics(label, sims, routing.pin_idle_ttl_s)
    plans = workload.plan()
    metrics.demand(plans)
    engine = Engine(make_router(list(sims)), routing, sims, plans, metrics)
    return engine.run()
