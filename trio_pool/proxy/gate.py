"""Who may send a proxied request, and whether their limits let it start (shared mode).

``screen`` runs first on every route: dot-segments and encoded slashes are refused (400),
local mode answers only to a loopback Host (421: DNS rebinding), and while state.db cannot
tell whether users exist every request waits outside (503, fail closed).

Local mode then lets everything through. In shared mode a request needs a pool key
(wherever its CLI carries it: ``auth.keys.presented_key``); a missing or unknown key is a
401 in the provider's own error shape, a path no CLI uses a 404 (``friend_routes``), a user
over a limit a 429 naming the limit. The dashboard's "Try it" calls come from the proxy
itself with the process's internal token instead.
"""

from __future__ import annotations

import logging

import attrs

from trio_pool import clock
from trio_pool.auth.internal import internal_user, is_internal
from trio_pool.auth.keys import presented_key
from trio_pool.auth.limits import Refusal
from trio_pool.auth.request_checks import host_is_loopback, path_problem
from trio_pool.logs import bind
from trio_pool.providers import PROVIDER_REGISTRY, guess_provider
from trio_pool.providers.base import Provider, Route, RouteKind
from trio_pool.providers.friend_routes import friend_may_use
from trio_pool.proxy import answers
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead
from trio_pool.services import Services

log = logging.getLogger(__name__)

NO_KEY = (
    "this trio-pool is shared: send your pool key (get one on the pool's dashboard, then run "
    "`trio-pool setup <cli> --write --key <key>`)"
)


@attrs.frozen
class Admitted:
    user: str | None  # None: local mode (or the local admin trying a prompt)
    counted: bool = False  # started() was called: ended() is owed

    def release(self, services: Services) -> None:
        if self.counted and self.user is not None:
            services.directory.limiter.ended(self.user)


REBOUND = (
    "this trio-pool is local: it answers only to Host localhost, 127.0.0.1 or [::1] (another "
    "name may be a web page rebinding its DNS to this machine)"
)
UNKNOWN_USERS = (
    "trio-pool cannot read its users from data/state.db yet, so it refuses every request "
    "until it can (see the proxy log)"
)


async def screen(services: Services, exchange: Exchange) -> bool:
    """Refuse what no route may take (True: answered). Runs before routing."""
    head = exchange.head
    problem = path_problem(head.path)
    if problem is not None:
        log.warning("gate.refused reason=bad_path client=%s", exchange.client)
        await answers.send_error(exchange, _shape(head), 400, problem, "invalid_request_error")
        return True
    directory = services.directory
    if not directory.ready:
        await answers.send_error(exchange, _shape(head), 503, UNKNOWN_USERS, "unavailable", 5.0)
        return True
    if not directory.shared and not host_is_loopback(head):
        log.warning("gate.refused reason=host client=%s", exchange.client)
        await answers.send_error(exchange, _shape(head), 421, REBOUND, "misdirected_request")
        return True
    return False


def _shape(head: RequestHead) -> Provider:
    """Whose error shape a refusal before routing takes (looked up only to refuse)."""
    return PROVIDER_REGISTRY[guess_provider(head)]


async def admit(
    services: Services, exchange: Exchange, provider: Provider, route: Route
) -> Admitted | None:
    """The request's user (limits counted), or None after refusing it."""
    head = exchange.head
    directory = services.directory
    websocket = route.kind is RouteKind.WEBSOCKET
    if is_internal(services.self_call.token, head):
        name = internal_user(head)
        user = directory.users.get(name) if name else None
        if user is not None and not await _may_use(exchange, provider, route):
            return None
        return await _limited(services, exchange, provider, user.name if user else None, websocket)
    if not directory.shared:
        return Admitted(None)
    key = presented_key(head)
    if key is None:
        log.info("gate.refused reason=no_key client=%s path=%s", exchange.client, head.path)
        await answers.send_error(exchange, provider, 401, NO_KEY, "authentication_error")
        return None
    found = directory.authenticate(key, clock.now())
    if found is None:
        log.warning("gate.refused reason=unknown_key client=%s path=%s", exchange.client, head.path)
        message = "unknown or revoked pool key; ask the pool's admin for a new one"
        await answers.send_error(exchange, provider, 401, message, "authentication_error")
        return None
    if not await _may_use(exchange, provider, route):
        return None
    return await _limited(services, exchange, provider, found.name, websocket)


async def _may_use(exchange: Exchange, provider: Provider, route: Route) -> bool:
    """A pool key reaches only what the CLIs use (False: refused with a 404)."""
    head = exchange.head
    if friend_may_use(route, head.method, head.path):
        return True
    log.warning(
        "gate.refused reason=path_not_for_keys client=%s method=%s path=%s",
        exchange.client,
        head.method,
        head.path,
    )
    message = (
        f"pool keys do not reach {head.method} {head.path}: only what the "
        f"{provider.name} CLI uses goes to the pool's accounts"
    )
    await answers.send_error(exchange, provider, 404, message, "not_found")
    return False


def turn_refusal(services: Services, user: str, provider: Provider) -> Refusal | None:
    """A ``response.create`` on ``user``'s open WebSocket: counted, or why it is refused.

    The socket holds one stream slot for its life; each turn is a request for rpm and
    share, as it would be over HTTP.
    """
    directory = services.directory
    found = directory.users.get(user)
    if found is None:
        return Refusal("user", f"user {user} no longer exists", 60.0)
    now = clock.now()
    refusal = directory.limiter.admit(user, provider.name, found.limits, now, streams=False)
    if refusal is not None:
        log.info("gate.limited user=%s limit=%s websocket=true", user, refusal.limit)
        services.events.limited(user, refusal.limit)
        return refusal
    directory.limiter.turn_started(user, now)
    return None


async def _limited(
    services: Services,
    exchange: Exchange,
    provider: Provider,
    name: str | None,
    websocket: bool = False,
) -> Admitted | None:
    if name is None:
        return Admitted(None)
    bind(user=name)
    directory = services.directory
    now = clock.now()
    refusal = directory.limiter.admit(name, provider.name, directory.users[name].limits, now)
    if refusal is not None:
        log.info("gate.limited user=%s limit=%s", name, refusal.limit)
        services.events.limited(name, refusal.limit)
        await answers.send_error(
            exchange, provider, 429, refusal.message, "user_limit", refusal.retry_after
        )
        return None
    # A socket's turns count one by one (turn_refusal); the socket itself holds a stream.
    directory.limiter.started(name, now, request=not websocket)
    return Admitted(name, counted=True)
