"""The request flow: route, choose an account, refresh, forward, classify, fail over, relay.

```
client -> route (providers) -> choose (accounts.Pool) -> fresh token (credentials.Refresher)
       -> prepare (provider) -> upstream -> classify (provider) -> report (Pool)
       -> 2xx: relay as it arrives | quota / throttle / auth / 5xx: next account
```
Only bodies held in memory (<= max_inmem_body_bytes) can be replayed on another account;
larger ones stream straight to one account.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Exhausted, Lease, Pool
from trio_pool.auth.directory import Directory
from trio_pool.config import Config
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry, PoolAccount
from trio_pool.dashboard import routes
from trio_pool.dashboard.live import LiveFeed, end_document, start_document
from trio_pool.dashboard.overview import BurnHistory
from trio_pool.errors import UpstreamError
from trio_pool.logs import bind
from trio_pool.providers import PROVIDER_REGISTRY, find_route
from trio_pool.providers.base import (
    AccountAction,
    ConversationKey,
    Credentials,
    Outcome,
    OutcomeKind,
    Provider,
    ProviderName,
    QuotaReading,
    Route,
    RouteKind,
)
from trio_pool.providers.codex import with_priority_tier
from trio_pool.proxy import answers, gate, gemini_setup, local, websocket
from trio_pool.proxy.body import Body, chain, read_body
from trio_pool.proxy.metrics import Metrics, serve_metrics
from trio_pool.proxy.queue_budget import QueueBudget
from trio_pool.proxy.relay import RelayResult, relay_response, response_headers
from trio_pool.server.connection import Exchange
from trio_pool.server.server import Shutdown
from trio_pool.state.store import StateStore
from trio_pool.upstream.client import UpstreamClient
from trio_pool.usage.ledger import Tally, failure_text, hash_key, model_of
from trio_pool.usage.store import Ledger

log = logging.getLogger(__name__)

# Outcomes after which the same request may go to another account.
FAILOVER = frozenset(
    {
        OutcomeKind.QUOTA,
        OutcomeKind.THROTTLED,
        OutcomeKind.AUTH,
        OutcomeKind.FORBIDDEN,
        OutcomeKind.TRANSIENT,
        OutcomeKind.ACCOUNT_ACTION,
    }
)
# Never sleep in a tight loop when the pool says "usable again now" but still refuses.
MIN_QUEUE_SLEEP_S = 0.05


class Proxy:
    def __init__(
        self,
        config: Config,
        pool: Pool,
        registry: AccountRegistry,
        refresher: Refresher,
        client: UpstreamClient,
        shutdown: Shutdown,
        *,
        metrics: Metrics | None = None,
        ledger: Ledger | None = None,
        state: StateStore | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics or Metrics()
        self.ledger = ledger  # None: no ledger (turned off, or no state db)
        self.state = state  # None: no state db (the dashboard shows no history)
        self.directory = directory or Directory(None, friend_code=config.friend_code)
        self.live = LiveFeed()
        self.burn = BurnHistory()  # the Overview page's "how fast is it being used"
        # The dashboard's "Try it" calls the proxy over loopback with this secret.
        self.self_url = ""
        self.internal_token = secrets.token_urlsafe(32)
        self._request_ids = 0
        routing = config.routing
        self.queue = QueueBudget(routing.max_queued, routing.max_queued_bytes)
        self.pool = pool
        self.registry = registry
        self.refresher = refresher
        self.client = client
        self.shutdown = shutdown
        self.upstreams: dict[ProviderName, Mapping[str, str]] = {
            name: attrs.asdict(getattr(config, name)) for name in PROVIDER_REGISTRY
        }

    # -- entry point ---------------------------------------------------------------------

    async def handle(self, exchange: Exchange) -> None:
        head = exchange.head
        if await gate.screen(self, exchange):
            return
        if head.path == "/healthz":
            await local.healthz(exchange, self.pool, self.registry, full=self._insider(exchange))
            return
        if head.path == "/metrics":
            if not self._insider(exchange):
                await answers.send_error(
                    exchange, PROVIDER_REGISTRY["codex"], 401, "admins only", "unauthorized"
                )
                return
            dropped = 0 if self.ledger is None else self.ledger.dropped
            await serve_metrics(exchange, self.metrics, self.pool, ledger_dropped=dropped)
            return
        route = find_route(head, self.upstreams) or websocket.realtime_route(head, self.upstreams)
        if route is None:
            if routes.is_dashboard_path(head.path):
                await routes.handle(exchange, self)
                return
            provider = PROVIDER_REGISTRY[local.guess_provider(head)]
            await answers.send_error(
                exchange,
                provider,
                404,
                f"trio-pool does not serve {head.method} {head.path}",
                "not_found",
            )
            return
        provider = PROVIDER_REGISTRY[route.provider]
        bind(provider=route.provider)
        admitted = await gate.admit(self, exchange, provider, route)
        if admitted is None:
            return
        try:
            if route.refusal is not None:
                await answers.send_error(exchange, provider, 403, route.refusal, "refused")
            elif route.kind is RouteKind.POOL_USAGE:
                await local.codex_pool_usage(exchange, self.pool)
            elif route.kind is RouteKind.WEBSOCKET:
                await websocket.serve_websocket(self, exchange, route, provider, admitted.user)
            else:
                body = await read_body(exchange, self.config.max_inmem_body_bytes)
                await self._forward(exchange, route, provider, body, admitted.user)
        finally:
            admitted.release(self)

    def _insider(self, exchange: Exchange) -> bool:
        """Health details and metrics: local mode, this machine, or an admin."""
        if not self.directory.shared:
            return True
        return routes.caller_of(self, exchange)[0].is_admin or routes.is_local_client(
            self, exchange
        )

    # -- the attempt loop ------------------------------------------------------------------

    async def _forward(
        self, exchange: Exchange, route: Route, provider: Provider, body: Body, user: str | None
    ) -> None:
        head = exchange.head
        # Side calls carry session headers too, but only model calls pin a conversation.
        key = (
            provider.conversation_key(head, body.held if body.replayable else None)
            if route.inference or route.follows_pin
            else None
        )
        tally = Tally(
            route.provider,
            clock.now(),
            trio.current_time(),
            model=model_of(body.held, head.path),
            conversation=hash_key(key.value if key is not None else None),
            user=user,
        )
        self.started(tally, head.path)
        try:
            await self._attempts(exchange, route, provider, body, key, tally)
        finally:
            self._finish(tally)

    async def _attempts(
        self,
        exchange: Exchange,
        route: Route,
        provider: Provider,
        body: Body,
        key: ConversationKey | None,
        tally: Tally,
    ) -> None:
        tried: set[str] = set()
        failures: list[tuple[str, str]] = []
        last: Outcome | None = None
        attempts = 0
        queue_deadline = clock.now() + self.config.routing.queue_wait_s
        while attempts < self.config.routing.max_attempts:
            decision = await self.lease(
                route.provider,
                key,
                tried,
                queue_deadline,
                use=route.inference,
                held=len(body.held),
                model=tally.model,
            )
            if isinstance(decision, Exhausted):
                tally.status = await answers.send_exhausted(exchange, provider, decision, failures)
                return
            attempts += 1
            tally.attempts, tally.account = attempts, decision.account
            account = self.account_for(decision, tried)
            if account is None:
                continue
            outcome = await self._attempt(exchange, route, provider, decision, account, body, tally)
            if outcome is None:
                self.metrics.attempt(route.provider, decision.account, "answered", failover=False)
                return
            last = outcome
            tried.add(decision.account)
            if outcome.kind is OutcomeKind.WRONG_PLAN:
                # Its plan lacks what was asked: so do the others on that plan.
                tried |= self.pool.same_plan(decision.account)
            failures.append((decision.account, outcome.reason or outcome.kind.value))
            tally.failures.append(failure_text(*failures[-1]))
            self.metrics.attempt(
                route.provider, decision.account, outcome.kind.value, failover=True
            )
            log.info(
                "proxy.failover account=%s kind=%s status=%s reason=%s",
                decision.account,
                outcome.kind.value,
                outcome.status,
                outcome.reason,
            )
        tally.status = await answers.send_give_up(exchange, provider, failures, last)

    def started(self, tally: Tally, path: str) -> None:
        """The Live page's "start" event; the request's id is kept on the tally."""
        tally.id = self.live.next_id()
        tally.path = path
        if self.live.subscribers:  # a start matters only to an open Live page
            self.live.publish("start", _start_document(tally))

    def observe(self, tally: Tally, account: str, quota: QuotaReading, now: float) -> None:
        """A quota reading; in shared mode, what the user's request moved is theirs."""
        if tally.user is None:
            self.pool.observe(account, quota, now)
            return
        before = self.pool.window_use(account, now)
        self.pool.observe(account, quota, now)
        size = max(1, self.pool.provider_size(account))
        for window, (used, window_s) in self.pool.window_use(account, now).items():
            moved = used - before.get(window, (0.0, None))[0]
            if moved > 0 and window_s:
                self.directory.limiter.moved(
                    tally.user,
                    tally.provider,
                    window,
                    share=moved / size,
                    window_s=window_s,
                    now=now,
                )

    def _finish(self, tally: Tally) -> None:
        """The request's ledger row and metrics: no await, no disk (the flusher writes)."""
        row = tally.row(trio.current_time())
        self.live.publish("end", end_document(_start_document(tally), row))
        self.metrics.request(row.provider, row.account, row.status)
        if row.account is not None and tally.usage is not None:
            self.metrics.tokens(row.provider, row.account, tally.usage)
        if 200 <= row.status < 300:
            self.metrics.stream_duration(row.provider, row.duration_ms / 1000)
        if self.ledger is not None:
            self.ledger.record(row)

    async def lease(
        self,
        provider: ProviderName,
        key: ConversationKey | None,
        tried: set[str],
        queue_deadline: float,
        *,
        use: bool = True,
        held: int = 0,
        model: str | None = None,
    ) -> Lease | Exhausted:
        """The account for the next attempt. When none is usable, wait (until queue_deadline)
        for the first to come back rather than failing the CLI (design.md §3.4); the waits
        are not attempts, and after one every account may be tried again. ``held``: the body
        bytes the request keeps while it waits (the global queue cap counts them)."""
        queued = False
        try:
            while True:
                now = clock.now()
                decision = self.pool.choose(
                    provider, key, now, exclude=frozenset(tried), use=use, model=model
                )
                if not isinstance(decision, Exhausted):
                    return decision
                wake = self.pool.next_change(provider, now, model)
                if wake is None or wake > queue_deadline:
                    return decision
                if not queued:
                    if not self.queue.try_enter(held):
                        log.warning("proxy.queue.full requests=%d", self.queue.requests)
                        why = ("queue", self.queue.refusal())
                        return attrs.evolve(decision, reasons=(*decision.reasons, why))
                    queued = True
                await trio.sleep_until(clock.to_trio_deadline(max(wake, now + MIN_QUEUE_SLEEP_S)))
                tried.clear()
        finally:
            if queued:
                self.queue.leave(held)

    def _internal_headers(self, exchange: Exchange, account: PoolAccount) -> list[tuple[str, str]]:
        """The answering account, told only to the proxy's own calls (the dashboard's Try it)."""
        if gate.is_internal(self, exchange.head):
            return [(gate.ACCOUNT_HEADER, account.name)]
        return []

    def account_for(self, lease: Lease, tried: set[str]) -> PoolAccount | None:
        """The leased account's files, or None (lease ended) if it left the pool a moment ago."""
        account = self.registry.get(lease.account)
        if account is None:
            tried.add(lease.account)
            self.pool.report(
                lease, Outcome(OutcomeKind.CLIENT_ERROR, reason="removed"), clock.now()
            )
            return None
        bind(account=lease.account)
        return account

    async def _attempt(
        self,
        exchange: Exchange,
        route: Route,
        provider: Provider,
        lease: Lease,
        account: PoolAccount,
        body: Body,
        tally: Tally,
    ) -> Outcome | None:
        """One account's try. None: an answer reached the client. An Outcome: fail over."""

        def report(outcome: Outcome) -> None:
            # The pool ignores a second report of a lease: the first outcome stands.
            self.pool.report(lease, outcome, clock.now())

        try:
            credentials = await self.refresher.fresh_credentials(account)
            set_up = await gemini_setup.set_up(
                self.client, self.pool, account, credentials, self.upstreams
            )
            if isinstance(set_up, AccountAction):
                # Only the account's owner can fix this one: it leaves rotation, next account.
                action = Outcome(OutcomeKind.ACCOUNT_ACTION, None, set_up.message, action=set_up)
                report(action)
                return action
            credentials = set_up
            may_refresh = body.replayable
            while True:
                outcome = await self._send(
                    exchange, route, provider, lease, account, credentials, body, report, tally
                )
                if outcome is None:
                    return None
                if outcome.kind is OutcomeKind.AUTH and may_refresh:
                    # A 401 usually means an expired or revoked access token: refresh once
                    # (single-flight) and retry this same account once.
                    may_refresh = False
                    if await self.refresher.refresh(account, reason="401", stale=credentials):
                        credentials = account.credentials
                        continue
                report(outcome)
                return outcome
        finally:
            # Cancelled (client hung up) or failed unexpectedly: the lease must still end.
            report(Outcome(OutcomeKind.CLIENT_ERROR, reason="request ended"))

    async def _send(
        self,
        exchange: Exchange,
        route: Route,
        provider: Provider,
        lease: Lease,
        account: PoolAccount,
        credentials: Credentials,
        body: Body,
        report: Callable[[Outcome], None],
        tally: Tally,
    ) -> Outcome | None:
        prepared = provider.prepare(route, exchange.head, body.held, credentials)
        if lease.fast and route.provider == "codex" and body.replayable:
            prepared = with_priority_tier(prepared)
        headers = [
            (k, v)
            for k, v in prepared.headers
            if k not in ("accept-encoding", "content-length", "transfer-encoding")
        ]
        # Identity, so that the stream can be parsed for usage and errors as it passes.
        headers.append(("accept-encoding", "identity"))
        content: bytes | AsyncIterator[bytes] = prepared.body
        if body.rest is not None:
            content = chain(prepared.body, body.rest)
            if body.length is not None:
                headers.append(("content-length", str(body.length)))
        started = trio.current_time()
        try:
            async with self.client.stream(
                prepared.method, prepared.url, headers, content
            ) as response:
                now = clock.now()
                tally.ttfb_s = trio.current_time() - tally.started
                if 200 <= response.status < 300:
                    tally.status = response.status
                    quota = provider.read_quota(response.headers, now)
                    if quota is not None:
                        self.observe(tally, account.name, quota, now)
                    observer = provider.observer(exchange.head, response.headers, now)
                    result = RelayResult(Outcome(OutcomeKind.OK, response.status, quota=quota))
                    try:
                        await relay_response(
                            exchange,
                            response,
                            provider,
                            observer,
                            self.shutdown,
                            result,
                            extra_headers=self._internal_headers(exchange, account),
                        )
                    finally:
                        # Also after a client hang-up: tokens already spent are counted.
                        now = clock.now()
                        if result.quota is not None:
                            self.observe(tally, account.name, result.quota, now)
                        if result.usage is not None:
                            self.pool.record_usage(account.name, result.usage, now)
                        if result.pin is not None:
                            self.pool.pin(route.provider, result.pin, account.name, now)
                        tally.usage, tally.bytes = result.usage, result.bytes_sent
                        report(result.outcome)
                        answers.log_done(exchange.head, response.status, started, result)
                    return None
                error_body = await response.read_all()
                outcome = provider.classify(response.status, response.headers, error_body, now)
                if body.replayable and (
                    outcome.kind in FAILOVER
                    # Another plan may offer the model; with none usable, the client gets
                    # this answer as it came.
                    or (
                        outcome.kind is OutcomeKind.WRONG_PLAN
                        and self.pool.other_plan_usable(account.name, now)
                    )
                ):
                    return outcome
                # Not the account's fault (a 400, a 404) or not replayable: pass it on as is.
                report(outcome)
                tally.status, tally.bytes = response.status, len(error_body)
                headers = response_headers(response.headers)
                await exchange.respond(
                    response.status,
                    [*headers, *self._internal_headers(exchange, account)],
                    error_body,
                )
                answers.log_done(exchange.head, response.status, started)
                return None
        except UpstreamError as exc:
            if exchange.response_started:
                raise
            kind = OutcomeKind.TRANSIENT
            outcome = Outcome(kind, None, reason=str(exc))
            if not body.replayable:
                report(outcome)
                tally.status = await answers.send_error(
                    exchange, provider, exc.status_hint, f"{account.name}: {exc}", "upstream_error"
                )
                return None
            return outcome


def _start_document(tally: Tally) -> dict[str, Any]:
    return start_document(tally.id, tally.at, tally.provider, tally.user, tally.model, tally.path)
