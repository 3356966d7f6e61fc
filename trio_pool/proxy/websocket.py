"""Codex Responses over WebSocket (and the realtime pass-through): one account per socket.

```
handshake -> choose (hard pin on the session) -> open the upstream socket with its credentials
  refused (quota 429 / 401 / 5xx): refresh or next account, as for HTTP, before answering
  opened: accept the client's upgrade with the upstream's 101 headers, relay both ways
          until either side closes; rate limits, usage and error frames go to the pool
```
The client hears nothing until an upstream socket is open, so a refusal can still fail over;
once every account refused, the client gets the last upstream refusal as is (Codex then
shows the usage-limit message, or falls back to HTTP).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Exhausted, Lease
from trio_pool.credentials.registry import PoolAccount
from trio_pool.errors import UpstreamError
from trio_pool.providers.base import (
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
from trio_pool.providers.wire import join_url, websocket_url
from trio_pool.proxy import answers, gate
from trio_pool.proxy.relay import response_headers
from trio_pool.proxy.ws_frames import FrameWatcher
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead, end_to_end
from trio_pool.upstream.client import make_ssl_context
from trio_pool.upstream.websocket import (
    MAX_MESSAGE_BYTES,
    Closed,
    HandshakeRefused,
    WebSocket,
    adopt,
    handshake_problem,
    open_socket,
)
from trio_pool.usage.ledger import Tally, failure_text, hash_key, model_of

if TYPE_CHECKING:
    from trio_pool.proxy.handler import Proxy

log = logging.getLogger(__name__)

REALTIME_PATHS = ("/v1/realtime",)
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
# Handshake fields trio-websocket writes itself (or that make no sense on a new connection).
_OWN_FIELDS = ("host", "content-length", "accept-encoding")
SHUTDOWN_CLOSE = Closed(1001, "trio-pool is shutting down")

Report = Callable[[Outcome], None]


def realtime_route(
    head: RequestHead, upstreams: Mapping[ProviderName, Mapping[str, str]]
) -> Route | None:
    """The generic pass-through: ``/v1/realtime`` upgrades go to the Codex upstream's base."""
    if head.path.rstrip("/") not in REALTIME_PATHS or not head.wants_upgrade("websocket"):
        return None
    base = upstreams["codex"]["upstream"]
    return Route(
        "codex", RouteKind.WEBSOCKET, websocket_url(join_url(base, "/realtime", head.query))
    )


@cache
def _ssl_context() -> object:
    return make_ssl_context()


def upstream_headers(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    return [
        (k, v) for k, v in headers if k not in _OWN_FIELDS and not k.startswith("sec-websocket-")
    ]


def reply_headers(headers: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The upstream's 101 headers worth passing on (x-codex-*, x-models-etag, openai-model)."""
    return [
        (k, v)
        for k, v in end_to_end(headers)
        if not k.startswith("sec-websocket-") and k not in ("content-length", "date", "server")
    ]


def session_key(provider: Provider, head: RequestHead) -> ConversationKey | None:
    """The conversation key, always hard: a socket's state lives on one account."""
    found = provider.conversation_key(head, None)
    value = found.value if found is not None else (head.get("x-session-id") or "").strip()
    return ConversationKey(value, hard=True) if value else None


async def serve_websocket(
    proxy: Proxy, exchange: Exchange, route: Route, provider: Provider, user: str | None = None
) -> None:
    """Answer one upgrade: refuse it, or relay the socket on one pooled account."""
    problem = handshake_problem(exchange.head)
    if problem is not None:
        await answers.send_error(exchange, provider, 400, problem, "invalid_request_error")
        return
    observe = route.upstream_url.split("?", 1)[0].endswith("/responses")
    await SocketFlow(proxy, exchange, route, provider, observe, user).run()


@attrs.define(eq=False)
class SocketFlow:
    proxy: Proxy
    exchange: Exchange
    route: Route
    provider: Provider
    observe: bool
    user: str | None = None  # shared mode: whose key opened the socket
    # One ledger row per socket (not per turn): its turns' tokens go to the pool's counters.
    tally: Tally | None = None

    async def run(self) -> None:
        key = session_key(self.provider, self.exchange.head)
        self.tally = tally = Tally(
            self.route.provider,
            clock.now(),
            trio.current_time(),
            model=model_of(b"", self.exchange.head.path),
            conversation=hash_key(key.value if key is not None else None),
            user=self.user,
        )
        self.proxy.started(tally, self.exchange.head.path)
        try:
            await self._run(key, tally)
        finally:
            self.proxy._finish(tally)

    async def _run(self, key: ConversationKey | None, tally: Tally) -> None:
        proxy, route = self.proxy, self.route
        routing = proxy.config.routing
        tried: set[str] = set()
        failures: list[tuple[str, str]] = []
        last: Outcome | None = None
        refusal: HandshakeRefused | None = None
        attempts = 0
        queue_deadline = clock.now() + routing.queue_wait_s
        while attempts < routing.max_attempts:
            decision = await proxy.lease(route.provider, key, tried, queue_deadline)
            if isinstance(decision, Exhausted):
                if refusal is None:
                    tally.status = await answers.send_exhausted(
                        self.exchange, self.provider, decision, failures
                    )
                    return
                break
            attempts += 1
            tally.attempts, tally.account = attempts, decision.account
            account = proxy.account_for(decision, tried)
            if account is None:
                continue
            result = await self._attempt(decision, account)
            if result is None:
                return
            last, refused = result
            refusal = refused or refusal
            tried.add(decision.account)
            failures.append((decision.account, last.reason or last.kind.value))
            tally.failures.append(failure_text(*failures[-1]))
            log.info(
                "ws.failover account=%s kind=%s status=%s reason=%s",
                decision.account,
                last.kind.value,
                last.status,
                last.reason,
            )
        if refusal is not None:
            await self._pass_refusal(refusal)
        else:
            tally.status = await answers.send_give_up(self.exchange, self.provider, failures, last)

    async def _attempt(
        self, lease: Lease, account: PoolAccount
    ) -> tuple[Outcome, HandshakeRefused | None] | None:
        """One account's try. None: the client got an answer or a socket. Else fail over."""

        def report(outcome: Outcome) -> None:
            # The pool ignores a second report of a lease: the first outcome stands.
            self.proxy.pool.report(lease, outcome, clock.now())

        refresher = self.proxy.refresher
        try:
            credentials = await refresher.fresh_credentials(account)
            may_refresh = True
            while True:
                try:
                    await self._open_and_relay(account, credentials, report)
                    return None
                except HandshakeRefused as refused:
                    now = clock.now()
                    outcome = self.provider.classify(
                        refused.status, refused.headers, refused.body, now
                    )
                    if outcome.kind is OutcomeKind.AUTH and may_refresh:
                        may_refresh = False
                        if await refresher.refresh(account, reason="401", stale=credentials):
                            credentials = account.credentials
                            continue
                    report(outcome)
                    if outcome.kind in FAILOVER:
                        return outcome, refused
                    await self._pass_refusal(refused)  # not the account's fault (400, 404)
                    return None
                except UpstreamError as exc:
                    if self.exchange.detached:
                        raise
                    outcome = Outcome(OutcomeKind.TRANSIENT, None, reason=str(exc))
                    report(outcome)
                    return outcome, None
        finally:
            # Cancelled or failed unexpectedly: the lease must still end.
            report(Outcome(OutcomeKind.CLIENT_ERROR, reason="socket ended"))

    async def _open_and_relay(
        self, account: PoolAccount, credentials: Credentials, report: Report
    ) -> None:
        head = self.exchange.head
        prepared = self.provider.prepare(self.route, head, b"", credentials)
        offered = tuple(
            p.strip() for v in head.get_all("sec-websocket-protocol") for p in v.split(",")
        )
        async with open_socket(
            prepared.url,
            upstream_headers(prepared.headers),
            subprotocols=tuple(p for p in offered if p),
            ssl_context=_ssl_context(),  # type: ignore[arg-type]
            connect_timeout_s=self.proxy.config.upstream_connect_timeout_s,
            max_message_bytes=MAX_MESSAGE_BYTES,
        ) as upstream:
            now = clock.now()
            quota = self.provider.read_quota(upstream.handshake_headers, now)
            if quota is not None and self.tally is not None:
                self.proxy.observe(self.tally, account.name, quota, now)
            stream, trailing = self.exchange.detach()
            try:
                async with trio.open_nursery() as nursery:
                    client = await adopt(
                        nursery,
                        stream,
                        head,
                        trailing,
                        headers=reply_headers(upstream.handshake_headers),
                        subprotocol=upstream.subprotocol,
                        write_timeout_s=self.proxy.config.upstream_idle_timeout_s,
                    )
                    if client is None:
                        report(Outcome(OutcomeKind.CLIENT_ERROR, reason="client went away"))
                        return
                    log.info("ws.open path=%s account=%s", head.path, account.name)
                    tally = self.tally
                    assert tally is not None  # set by run() before any socket opens
                    tally.status = 101

                    def observe(quota: QuotaReading, now: float) -> None:
                        self.proxy.observe(tally, account.name, quota, now)

                    watcher = FrameWatcher(
                        self.proxy.pool, self.provider, account.name, report, observe
                    )
                    ended = await self._relay(client, upstream, watcher if self.observe else None)
                    report(watcher.final(ended))
                    tally.usage = watcher.usage
                    log.info("ws.closed code=%d who=%s frames=%d", *ended, watcher.frames)
                    nursery.cancel_scope.cancel()
            finally:
                await trio.aclose_forcefully(stream)

    async def _relay(
        self, client: WebSocket, upstream: WebSocket, watcher: FrameWatcher | None
    ) -> tuple[int, str]:
        """Relay until either side closes; (close code, "client" | "upstream" | "shutdown")."""
        ended: list[tuple[int, str]] = []
        with self.proxy.shutdown.stream_scope() as scope:
            async with trio.open_nursery() as nursery:

                async def pump(
                    src: WebSocket,
                    dst: WebSocket,
                    who: str,
                    seen: Callable[[str | bytes], None],
                    screen: Callable[[str | bytes], str | None] = lambda _m: None,
                ) -> None:
                    while True:
                        message = await src.receive()
                        if isinstance(message, Closed):
                            if who == "client" and message.code == 1006:
                                message = Closed(1001, "the client went away")
                            elif who == "upstream" and message.code == 1006:
                                message = Closed(1011, "the upstream connection was lost")
                            ended.append((message.code, who))
                            await dst.close(message)
                            nursery.cancel_scope.cancel()
                            return
                        seen(message)
                        refused = screen(message)
                        if refused is not None:
                            # Over a user limit: the turn never reaches the account; the
                            # client hears why, in-band, as Codex hears upstream refusals.
                            if not await src.send(refused):
                                return
                            continue
                        if not await dst.send(message):
                            return  # dst is closing: its own pump carries the close over

                ignore: Callable[[str | bytes], None] = lambda _m: None  # noqa: E731
                nursery.start_soon(pump, client, upstream, "client", ignore, self._turn_refusal)
                seen = ignore if watcher is None else watcher.on_message
                nursery.start_soon(pump, upstream, client, "upstream", seen)
        if scope.cancelled_caught:
            await client.close(SHUTDOWN_CLOSE)
            await upstream.close(SHUTDOWN_CLOSE)
            return SHUTDOWN_CLOSE.code, "shutdown"
        return ended[0] if ended else (1000, "client")

    def _turn_refusal(self, message: str | bytes) -> str | None:
        """A user's ``response.create`` counted against their limits (M5): None to forward
        it, else the error frame to answer with (Codex's in-band error shape, status 429).

        The handshake held a stream slot for the socket; every turn is a request for rpm
        and share. Codex's warm-up (``"generate": false``) produces nothing and is free.
        """
        if self.user is None or not isinstance(message, str):
            return None
        if '"response.create"' not in message:
            return None  # skip parsing what cannot be a turn
        try:
            payload = json.loads(message)
        except ValueError:
            return None
        if not isinstance(payload, dict) or payload.get("type") != "response.create":
            return None
        if payload.get("generate") is False:
            return None
        refusal = gate.turn_refusal(self.proxy, self.user, self.provider)
        if refusal is None:
            return None
        retry_after = str(max(1, math.ceil(refusal.retry_after)))
        return json.dumps(
            {
                "type": "error",
                "status": 429,
                "error": {"type": "user_limit", "code": refusal.limit, "message": refusal.message},
                "headers": {"retry-after": retry_after},
            }
        )

    async def _pass_refusal(self, refused: HandshakeRefused) -> None:
        if self.tally is not None:
            self.tally.status = refused.status
        await self.exchange.respond(refused.status, response_headers(refused.headers), refused.body)
        log.info("ws.refused status=%d path=%s", refused.status, self.exchange.head.path)
