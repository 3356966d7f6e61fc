"""A provider route's request: admit it, then forward it on the pool's accounts.

```
client -> admit (gate) -> choose (accounts.Pool) -> fresh token (credentials.Refresher)
       -> prepare (provider) -> upstream -> classify (provider) -> report (Pool)
       -> 2xx: relay as it arrives | quota / throttle / auth / 5xx: next account
```
Only bodies held in memory (<= max_inmem_body_bytes) can be replayed on another account;
larger ones stream straight to one account. The loop and its policy are shared with
WebSockets (``proxy.attempt_loop``, ``proxy.attempts``); this module is the HTTP try.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Lease
from trio_pool.credentials.registry import PoolAccount
from trio_pool.errors import UpstreamError
from trio_pool.logs import bind
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import Credentials, Route, RouteKind
from trio_pool.proxy import answers, gate, translated
from trio_pool.proxy.attempt_loop import Request, new_request, run_request
from trio_pool.proxy.attempts import FailOver, GiveUp, RefreshAndRetry
from trio_pool.proxy.body import Body, chain, read_body
from trio_pool.proxy.pool_usage import answer_pool_usage
from trio_pool.proxy.relay import relay_response, response_headers
from trio_pool.proxy.websocket import relay_websocket
from trio_pool.server.connection import Exchange
from trio_pool.services import Services
from trio_pool.upstream.client import UpstreamResponse
from trio_pool.usage.ledger import model_of

# Hop-by-hop or recomputed: never sent upstream as the client sent them.
_OWN_HEADERS = ("accept-encoding", "content-length", "transfer-encoding")


async def answer_route(services: Services, exchange: Exchange, route: Route) -> None:
    """Answer a request that a provider's route table accepted (the front's hand-off)."""
    provider = PROVIDER_REGISTRY[route.provider]
    shape = answers.client_shape(route)
    bind(provider=route.provider)
    admitted = await gate.admit(services, exchange, provider, route)
    if admitted is None:
        return
    try:
        if route.refusal is not None:
            await answers.send_error(exchange, shape, 403, route.refusal, "refused")
        elif route.kind is RouteKind.POOL_USAGE:
            await answer_pool_usage(exchange, services.pool)
        elif route.kind is RouteKind.MODEL_LIST:
            await translated.answer_model_list(services, exchange, route)
        elif route.kind is RouteKind.WEBSOCKET:
            elsewhere = translated.websocket_elsewhere(services, exchange.head)
            if elsewhere is not None:
                await answers.send_error(exchange, shape, 426, elsewhere, "upgrade_required")
            else:
                await relay_websocket(services, exchange, route, provider, admitted.user)
        else:
            body = await read_body(exchange, services.config.max_inmem_body_bytes)
            if route.client_format is not None:
                # The model may send it to another provider's accounts (translation.md).
                chosen = translated.routed(services, exchange.head, route, body)
                if isinstance(chosen, translated.Foreign):
                    await translated.answer(services, exchange, route, chosen, body, admitted.user)
                    return
                body = chosen
            # Awaited here, not through a helper coroutine: no extra frame on the hot path.
            await run_request(*http_request(services, exchange, route, body, admitted.user))
    finally:
        admitted.release(services)


def http_request(
    services: Services, exchange: Exchange, route: Route, body: Body, user: str | None
) -> tuple[Request, HttpTry]:
    """The request's record and its HTTP tries: sent to the pool's accounts until one
    answers (or none can)."""
    head = exchange.head
    provider = PROVIDER_REGISTRY[route.provider]
    # Side calls carry session headers too, but only model calls pin a conversation.
    key = (
        provider.conversation_key(head, body.held if body.replayable else None)
        if route.inference or route.follows_pin
        else None
    )
    request = new_request(
        services,
        exchange,
        route,
        provider,
        answers.client_shape(route),
        key=key,
        user=user,
        model=model_of(body.held, head.path),
        replayable=body.replayable,
        held=len(body.held),
    )
    return request, HttpTry(request, body)


@attrs.define(eq=False)
class HttpTry:
    """One HTTP request's tries: each sends the (held) body with one account."""

    request: Request
    body: Body

    async def give_up(self, give_up: GiveUp) -> None:
        request = self.request
        request.tally.status = await answers.send_give_up(request.exchange, request.shape, give_up)

    async def send(
        self, lease: Lease, account: PoolAccount, credentials: Credentials
    ) -> FailOver | RefreshAndRetry | None:
        request, body = self.request, self.body
        exchange, tally = request.exchange, request.tally
        prepared = request.provider.prepare(
            request.route,
            exchange.head,
            body.held,
            credentials,
            fast=lease.fast and body.replayable,
        )
        headers = [(k, v) for k, v in prepared.headers if k not in _OWN_HEADERS]
        # Identity, so that the stream can be parsed for usage and errors as it passes.
        headers.append(("accept-encoding", "identity"))
        content: bytes | AsyncIterator[bytes] = prepared.body
        if body.rest is not None:
            content = chain(prepared.body, body.rest)
            if body.length is not None:
                headers.append(("content-length", str(body.length)))
        started = trio.current_time()
        client = request.services.client
        try:
            async with client.stream(prepared.method, prepared.url, headers, content) as response:
                tally.ttfb_s = trio.current_time() - tally.started
                if not 200 <= response.status < 300:
                    return await self._refused(lease, account, response, started)
                # Relayed from this frame (no helper coroutine): every chunk resumes it.
                tally.status = response.status
                result = request.relay_starts(account.name, response.status, response.headers)
                try:
                    await relay_response(
                        exchange,
                        response,
                        request.shape,
                        request.provider.observer(exchange.head, response.headers, clock.now()),
                        request.services.shutdown,
                        result,
                        extra_headers=request.account_headers(account.name),
                    )
                finally:
                    # Also after a client hang-up: tokens already spent are counted.
                    request.relay_ended(lease, account.name, response.status, started, result)
                return None
        except UpstreamError as exc:
            if exchange.response_started:
                raise
            return await request.upstream_failed(lease, account.name, exc)

    async def _refused(
        self, lease: Lease, account: PoolAccount, response: UpstreamResponse, started: float
    ) -> FailOver | RefreshAndRetry | None:
        """A non-2xx answer: fail over, refresh, or pass it on to the client as it came."""
        request = self.request
        exchange, tally = request.exchange, request.tally
        error_body = await response.read_all()
        verdict = request.refused(lease, response.status, response.headers, error_body)
        if verdict is not None:
            return verdict
        # Not the account's fault (a 400, a 404) or not replayable: pass it on as is.
        tally.status, tally.bytes = response.status, len(error_body)
        headers = [*response_headers(response.headers), *request.account_headers(account.name)]
        await exchange.respond(response.status, headers, error_body)
        answers.log_done(exchange.head, response.status, started)
        return None
