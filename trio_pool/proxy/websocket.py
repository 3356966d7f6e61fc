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
from collections.abc import Callable
from functools import cache, partial

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Lease
from trio_pool.config import Config
from trio_pool.credentials.registry import PoolAccount
from trio_pool.errors import UpstreamError
from trio_pool.providers.base import (
    ConversationKey,
    Credentials,
    Outcome,
    OutcomeKind,
    Provider,
    Route,
    RouteKind,
)
from trio_pool.providers.codex_limits import family_names
from trio_pool.providers.wire import header_map, join_url, websocket_url
from trio_pool.proxy import answers, gate
from trio_pool.proxy.attempt_loop import Request, new_request, run_request
from trio_pool.proxy.attempts import FailOver, GiveUp, PassOn, RefreshAndRetry
from trio_pool.proxy.relay import response_headers
from trio_pool.proxy.ws_frames import FrameWatcher
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead, end_to_end
from trio_pool.services import Services
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
from trio_pool.usage.ledger import model_of

log = logging.getLogger(__name__)

REALTIME_PATHS = ("/v1/realtime",)
# Handshake fields trio-websocket writes itself (or that make no sense on a new connection).
_OWN_FIELDS = ("host", "content-length", "accept-encoding")
SHUTDOWN_CLOSE = Closed(1001, "trio-pool is shutting down")

Report = Callable[[Outcome], None]


def realtime_route(head: RequestHead, config: Config) -> Route | None:
    """The generic pass-through: ``/v1/realtime`` upgrades go to the Codex upstream's base."""
    if head.path.rstrip("/") not in REALTIME_PATHS or not head.wants_upgrade("websocket"):
        return None
    base = config.codex.upstream
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


async def relay_websocket(
    services: Services,
    exchange: Exchange,
    route: Route,
    provider: Provider,
    user: str | None = None,
) -> None:
    """Answer one upgrade: refuse it, or relay the socket on one pooled account."""
    shape = answers.client_shape(route)
    problem = handshake_problem(exchange.head)
    if problem is not None:
        await answers.send_error(exchange, shape, 400, problem, "invalid_request_error")
        return
    head = exchange.head
    request = new_request(
        services,
        exchange,
        route,
        provider,
        shape,
        key=session_key(provider, head),
        user=user,
        model=model_of(b"", head.path),
        replayable=True,  # the client hears nothing until an upstream socket is open
    )
    observe = route.upstream_url.split("?", 1)[0].endswith("/responses")
    await run_request(request, SocketTry(request, observe))


@attrs.define(eq=False)
class SocketTry:
    """One upgrade's tries: each opens the upstream socket with one account."""

    request: Request
    observe: bool  # watch the frames (Responses sockets; the realtime pass-through is opaque)
    refusal: HandshakeRefused | None = None  # the last upstream refusal, passed on at the end

    async def give_up(self, give_up: GiveUp) -> None:
        request = self.request
        if self.refusal is not None:
            # Codex shows the upstream's own usage-limit message, or falls back to HTTP.
            await self._pass_refusal(self.refusal)
            return
        request.tally.status = await answers.send_give_up(request.exchange, request.shape, give_up)

    async def send(
        self, lease: Lease, account: PoolAccount, credentials: Credentials
    ) -> FailOver | RefreshAndRetry | None:
        request = self.request
        report: Report = partial(request.report, lease)
        try:
            await self._open_and_relay(account, credentials, report)
            return None
        except HandshakeRefused as refused:
            now = clock.now()
            outcome = request.provider.classify(refused.status, refused.headers, refused.body, now)
            verdict = request.plan.failed(lease, outcome, now)
            if isinstance(verdict, PassOn):
                report(outcome)
                await self._pass_refusal(refused)  # not the account's fault (400, 404)
                return None
            self.refusal = refused  # what the client hears if no other account opens
            return verdict
        except UpstreamError as exc:
            if request.exchange.detached:
                raise
            outcome = Outcome(OutcomeKind.TRANSIENT, None, reason=str(exc))
            verdict = request.plan.failed(lease, outcome, clock.now(), error=exc)
            if isinstance(verdict, PassOn):  # never: a handshake can always be sent again
                raise
            return verdict

    async def _open_and_relay(
        self, account: PoolAccount, credentials: Credentials, report: Report
    ) -> None:
        request = self.request
        services, head, tally = request.services, request.exchange.head, request.tally
        prepared = request.provider.prepare(request.route, head, b"", credentials)
        offered = tuple(
            p.strip() for v in head.get_all("sec-websocket-protocol") for p in v.split(",")
        )
        async with open_socket(
            prepared.url,
            upstream_headers(prepared.headers),
            subprotocols=tuple(p for p in offered if p),
            ssl_context=_ssl_context(),  # type: ignore[arg-type]
            connect_timeout_s=services.config.upstream_connect_timeout_s,
            max_message_bytes=MAX_MESSAGE_BYTES,
        ) as upstream:
            now = clock.now()
            quota = request.provider.read_quota(upstream.handshake_headers, now)
            if quota is not None:
                request.observe(account.name, quota, now)
            stream, trailing = request.exchange.detach()
            try:
                async with trio.open_nursery() as nursery:
                    client = await adopt(
                        nursery,
                        stream,
                        head,
                        trailing,
                        headers=reply_headers(upstream.handshake_headers),
                        subprotocol=upstream.subprotocol,
                        write_timeout_s=services.config.upstream_idle_timeout_s,
                    )
                    if client is None:
                        report(Outcome(OutcomeKind.CLIENT_ERROR, reason="client went away"))
                        return
                    log.info("ws.open path=%s account=%s", head.path, account.name)
                    tally.status = 101
                    observe = partial(request.observe, account.name)
                    names = family_names(header_map(upstream.handshake_headers))
                    watcher = FrameWatcher(
                        services.pool, request.provider, account.name, report, observe, names
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
        with self.request.services.shutdown.stream_scope() as scope:
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
        request = self.request
        user = request.tally.user
        if user is None or not isinstance(message, str):
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
        refusal = gate.turn_refusal(request.services, user, request.provider)
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
        exchange = self.request.exchange
        self.request.tally.status = refused.status
        await exchange.respond(refused.status, response_headers(refused.headers), refused.body)
        log.info("ws.refused status=%d path=%s", refused.status, exchange.head.path)
