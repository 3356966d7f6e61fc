"""Who may send a proxied request, and whether their limits let it start (shared mode).

Local mode lets everything through. In shared mode a request needs a pool key (wherever
its CLI carries it: ``auth.keys.presented_key``); a missing or unknown key is a 401 in the
provider's own error shape, a user over a limit a 429 naming the limit. The dashboard's
"Try it" calls come from the proxy itself with the process's internal token instead.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

import attrs

from trio_pool import clock
from trio_pool.auth.keys import presented_key
from trio_pool.logs import bind
from trio_pool.providers.base import Provider
from trio_pool.proxy import answers
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead

if TYPE_CHECKING:
    from trio_pool.proxy.handler import Proxy

log = logging.getLogger(__name__)

NO_KEY = (
    "this trio-pool is shared: send your pool key (get one on the pool's dashboard, then run "
    "`trio-pool setup <cli> --write --key <key>`)"
)


# The proxy's calls to itself (Try it): the secret, whose they are, and the answering account.
INTERNAL_HEADER = "x-trio-pool-internal"
USER_HEADER = "x-trio-pool-user"
ACCOUNT_HEADER = "x-trio-pool-account"


@attrs.frozen
class Admitted:
    user: str | None  # None: local mode (or the local admin trying a prompt)
    counted: bool = False  # started() was called: ended() is owed

    def release(self, proxy: Proxy) -> None:
        if self.counted and self.user is not None:
            proxy.directory.limiter.ended(self.user)


async def admit(proxy: Proxy, exchange: Exchange, provider: Provider) -> Admitted | None:
    """The request's user (limits counted), or None after refusing it."""
    head = exchange.head
    directory = proxy.directory
    if is_internal(proxy, head):
        name = head.get(USER_HEADER) or None
        user = directory.users.get(name) if name else None
        return await _limited(proxy, exchange, provider, user.name if user else None)
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
    return await _limited(proxy, exchange, provider, found.name)


def is_internal(proxy: Proxy, head: RequestHead) -> bool:
    """A call the proxy made to itself (the dashboard's Try it)."""
    internal = head.get(INTERNAL_HEADER)
    return internal is not None and hmac.compare_digest(
        internal.encode(), proxy.internal_token.encode()
    )


async def _limited(
    proxy: Proxy, exchange: Exchange, provider: Provider, name: str | None
) -> Admitted | None:
    if name is None:
        return Admitted(None)
    bind(user=name)
    directory = proxy.directory
    now = clock.now()
    refusal = directory.limiter.admit(name, provider.name, directory.users[name].limits, now)
    if refusal is not None:
        log.info("gate.limited user=%s limit=%s", name, refusal.limit)
        proxy.metrics.limited(name, refusal.limit)
        await answers.send_error(
            exchange, provider, 429, refusal.message, "user_limit", refusal.retry_after
        )
        return None
    directory.limiter.started(name, now)
    return Admitted(name, counted=True)
