"""Who is calling: the one answer the dashboard, /healthz and /metrics all ask for.

Callers (``auth.model.Caller``): the ``admin_token`` as a Bearer (scripts), a signed
session cookie (the page), or, in local mode with neither an admin password nor an
``admin_token``, any browser on this machine. That last one is guarded: the Host header
must name loopback (a DNS-rebinding page cannot pass). A request forwarded by a trusted
reverse proxy never counts as "this machine", even from a loopback peer.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING

from trio_pool.auth.model import ANONYMOUS, LOCAL_ADMIN, Caller
from trio_pool.auth.request_checks import ClientAddress, client_address, host_is_loopback
from trio_pool.auth.session import cookie_value
from trio_pool.config import Config, is_loopback
from trio_pool.server.messages import RequestHead

if TYPE_CHECKING:
    from trio_pool.auth.directory import Directory

log = logging.getLogger(__name__)


def peer_host(client: str) -> str:
    """The TCP peer's address without its port ("::1", "192.168.1.5")."""
    return client.rpartition(":")[0].strip("[]") or client


def client_of(head: RequestHead, client: str, config: Config) -> ClientAddress:
    """The caller's address (through X-Forwarded-For only from a trusted proxy)."""
    return client_address(peer_host(client), head, config.trusted_proxies)


def is_local_client(head: RequestHead, client: str, config: Config) -> bool:
    """A caller on this machine, asking for this machine by name (no DNS rebinding)."""
    who = client_of(head, client, config)
    return (
        not who.forwarded
        and is_loopback(who.host)
        and bool((head.get("host") or "").strip())
        and host_is_loopback(head)
    )


def bearer_matches(expected: str, header: str | None) -> bool:
    """``Authorization: Bearer <expected>``, compared in constant time."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


def caller_of(
    head: RequestHead, client: str, config: Config, directory: Directory, now: float
) -> tuple[Caller, bool]:
    """Who is calling, and whether they came with a header credential (no CSRF risk)."""
    token = config.admin_token
    if token is not None and head.get("authorization") is not None:
        # A script's credential: right, or refused outright (never a fallback below).
        if bearer_matches(token, head.get("authorization")):
            return LOCAL_ADMIN, True
        log.warning("admin.unauthorized reason=wrong_token client=%s path=%s", client, head.path)
        return ANONYMOUS, True
    cookie = cookie_value(head.get_all("cookie"))
    if cookie is not None:
        caller = directory.session_caller(cookie, now)
        if caller is not None:
            return caller, False
    if (
        not directory.shared
        and directory.password_hash is None
        and token is None
        and is_local_client(head, client, config)
    ):
        return LOCAL_ADMIN, False
    return ANONYMOUS, False


def is_insider(
    head: RequestHead, client: str, config: Config, directory: Directory, now: float
) -> bool:
    """Health details and metrics: local mode, this machine, or an admin."""
    if not directory.shared:
        return True
    return caller_of(head, client, config, directory, now)[0].is_admin or is_local_client(
        head, client, config
    )
