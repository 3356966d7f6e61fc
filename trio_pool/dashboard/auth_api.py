"""The API of shared mode: sessions, friend sign-up, the admin password, users and keys.

Routes (JSON, errors as ``{"error": {"type", "message"}}``):
``/api/session`` GET/POST/DELETE, ``/api/join``, ``/api/password``, ``/api/users``,
``/api/users/NAME``, ``/api/users/NAME/keys``, ``/api/keys/ID``.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from trio_pool import clock
from trio_pool.auth.callers import client_of
from trio_pool.auth.directory import PasswordBusy, describe_user
from trio_pool.auth.manage import user_documents
from trio_pool.auth.model import MAX_LIMIT, Caller, UserLimits
from trio_pool.auth.session import clear_cookie, cookie_value, set_cookie, sign
from trio_pool.auth.throttle import AttemptThrottle
from trio_pool.dashboard.context import DashboardServices
from trio_pool.dashboard.data_api import public_address
from trio_pool.dashboard.http import error, read_json, reply
from trio_pool.errors import AuthError, StateError
from trio_pool.server.connection import Exchange
from trio_pool.setup.instructions import instructions

log = logging.getLogger(__name__)


def session_document(services: DashboardServices, ex: Exchange, caller: Caller) -> dict[str, Any]:
    directory = services.directory
    return {
        "mode": "shared" if directory.shared else "local",
        "user": {"name": caller.name, "role": caller.role} if caller.can_view else None,
        "join": directory.friend_code is not None,
        "friend_name": services.config.friend_name,
        "password_set": directory.password_hash is not None
        or services.config.admin_token is not None,
        "address": public_address(ex, services.self_call.url),
    }


def _cookie_for(services: DashboardServices, ex: Exchange, caller: Caller) -> tuple[str, str]:
    secure = ex.head.get("x-forwarded-proto") == "https"
    directory = services.directory
    value = sign(directory.secret, directory.session_for(caller), clock.now())
    return ("set-cookie", set_cookie(value, secure=secure))


async def handle(
    ex: Exchange, services: DashboardServices, caller: Caller, parts: list[str]
) -> bool:
    """Answer the route if it is one of ours (True); False to let the next router try."""
    method = ex.head.method
    try:
        match parts, method:
            case ["api", "session"], "GET":
                await reply(ex, 200, session_document(services, ex, caller))
            case ["api", "session"], "POST":
                await _sign_in(ex, services)
            case ["api", "session"], "DELETE":
                await _sign_out(ex, services)
            case ["api", "join"], "POST":
                await _join(ex, services)
            case ["api", "password"], "POST":
                await _password(ex, services, caller)
            case ["api", "users"], "GET" if caller.is_admin:
                await _list_users(ex, services)
            case ["api", "users"], "POST" if caller.is_admin:
                await _add_user(ex, services)
            case ["api", "users", name], "PATCH" if caller.is_admin:
                await _set_limits(ex, services, name)
            case ["api", "users", name], "DELETE" if caller.is_admin:
                await services.directory.remove_user(name)
                await reply(ex, 200, {"name": name, "removed": True})
            case ["api", "users", name, "keys"], "POST" if _owner_or_admin(caller, name):
                record, key = await services.directory.issue_key(name)
                await reply(ex, 201, {"id": record.id, "key": key, "prefix": record.prefix})
            case ["api", "keys", key_id], "DELETE" if _may_revoke(services, caller, key_id):
                await services.directory.revoke_key(key_id)
                await reply(ex, 200, {"id": key_id, "revoked": True})
            case ["api", ("users" | "keys"), *_], _:
                if caller.can_view:
                    await error(ex, 403, "forbidden", "this needs the pool's admin")
                else:
                    await error(ex, 401, "unauthorized", "sign in first")
            case _:
                return False
    except PasswordBusy as exc:
        await error(ex, 503, "busy", str(exc), retry_after_s=1)
    except AuthError as exc:
        await error(ex, exc.status_hint, "invalid_request", str(exc))
    except StateError as exc:
        log.error("dashboard.state.failed reason=%s", exc)
        await error(ex, 503, "unavailable", "data/state.db is unavailable; see the proxy log")
    return True


def _owner_or_admin(caller: Caller, name: str) -> bool:
    return caller.is_admin or (caller.role == "user" and caller.name == name)


def _may_revoke(services: DashboardServices, caller: Caller, key_id: str) -> bool:
    key = services.directory.keys.get(key_id)
    return caller.is_admin or (key is not None and _owner_or_admin(caller, key.user))


def _client(ex: Exchange, services: DashboardServices) -> str:
    """The address the throttles count by (X-Forwarded-For only from a trusted proxy)."""
    return client_of(ex.head, ex.client, services.config).host


async def _throttled(
    ex: Exchange, services: DashboardServices, throttle: AttemptThrottle, what: str
) -> bool:
    wait = throttle.retry_after(_client(ex, services), clock.now())
    if wait is None:
        return False
    log.warning("dashboard.throttled client=%s what=%s retry_after_s=%.0f", ex.client, what, wait)
    await error(
        ex,
        429,
        "rate_limited",
        f"too many wrong attempts; try again in {max(1, round(wait / 60))} min",
        retry_after_s=wait,
    )
    return True


async def _refused(ex: Exchange, what: str, message: str) -> None:
    log.warning("dashboard.sign_in.refused client=%s what=%s", ex.client, what)
    await error(ex, 401, "unauthorized", message)


async def _sign_in(ex: Exchange, services: DashboardServices) -> None:
    request = await read_json(ex)
    if request is None:
        return
    directory = services.directory
    client = _client(ex, services)
    password, key = request.get("password"), request.get("key")
    if isinstance(password, str) and password:
        throttle = directory.password_throttle
        if await _throttled(ex, services, throttle, "password"):
            return
        token = services.config.admin_token
        if directory.password_hash is None and token is None:
            await error(ex, 409, "no_password", "no admin password is set (trio-pool password)")
            return
        # The admin_token signs in as well as the password (it is already an admin secret).
        by_token = token is not None and hmac.compare_digest(password.encode(), token.encode())
        if not by_token:
            # Counted before scrypt is awaited (H3): a burst is throttled as it arrives.
            now = clock.now()
            right = await directory.check_password(password, lambda: throttle.failed(client, now))
            if not right:
                await _refused(ex, "password", "wrong password")
                return
        throttle.succeeded(client)
        caller = Caller("admin")
    elif isinstance(key, str) and key:
        throttle = directory.key_throttle
        if await _throttled(ex, services, throttle, "key"):
            return
        user = directory.authenticate(key.strip(), clock.now())
        if user is None:
            throttle.failed(client, clock.now())
            await _refused(ex, "key", "unknown or revoked key")
            return
        throttle.succeeded(client)
        caller = Caller("user", user.name)
    else:
        await error(ex, 400, "invalid_request", 'expected {"password": ...} or {"key": ...}')
        return
    log.info("dashboard.signed_in role=%s user=%s", caller.role, caller.name)
    document = session_document(services, ex, caller)
    await reply(ex, 200, document, [_cookie_for(services, ex, caller)])


async def _sign_out(ex: Exchange, services: DashboardServices) -> None:
    """Clear the cookie, and end the session itself: a copy of the cookie (taken from the
    browser, say) must not outlive the sign-out. Every session of that caller ends."""
    cookie = cookie_value(ex.head.get_all("cookie"))
    signed_in = None if cookie is None else services.directory.session_caller(cookie, clock.now())
    if signed_in is not None:
        await services.directory.end_sessions(signed_in)
        log.info("dashboard.signed_out role=%s user=%s", signed_in.role, signed_in.name)
    document = session_document(services, ex, Caller("anonymous"))
    await reply(ex, 200, document, [("set-cookie", clear_cookie())])


async def _join(ex: Exchange, services: DashboardServices) -> None:
    directory = services.directory
    expected = directory.friend_code
    if expected is None:
        await error(ex, 404, "not_found", "this pool does not take sign-ups (no friend_code)")
        return
    request = await read_json(ex)
    throttle = directory.join_throttle
    if request is None or await _throttled(ex, services, throttle, "friend code"):
        return
    code, name = request.get("code"), request.get("name")
    if not isinstance(code, str) or not isinstance(name, str):
        await error(ex, 400, "invalid_request", 'expected {"code": ..., "name": ...}')
        return
    client = _client(ex, services)
    if not hmac.compare_digest(code.strip().encode(), expected.encode()):
        throttle.failed(client, clock.now())
        await _refused(ex, "friend code", "wrong friend code")
        return
    throttle.succeeded(client)
    wait = directory.signups.retry_after(clock.now())
    if wait is not None:
        log.warning("dashboard.join.rate_limited client=%s retry_after_s=%.0f", ex.client, wait)
        message = (
            f"this pool took {directory.signups.per_hour} sign-ups in the last hour; try "
            f"again in {max(1, round(wait / 60))} min"
        )
        await error(ex, 429, "rate_limited", message, retry_after_s=wait)
        return
    join = services.config.join
    user, key = await directory.add_user(name, UserLimits(join.rpm, join.streams, join.share_pct))
    await directory.record_signup(clock.now())
    caller = Caller("user", user.name)
    log.info("dashboard.friend.joined user=%s", user.name)
    document = {
        "user": {"name": user.name, "role": "user"},
        "key": key,
        "setup": instructions(public_address(ex, services.self_call.url), key),
    }
    await reply(ex, 201, document, [_cookie_for(services, ex, caller)])


async def _password(ex: Exchange, services: DashboardServices, caller: Caller) -> None:
    if not caller.is_admin:
        await error(ex, 401 if not caller.can_view else 403, "forbidden", "admins only")
        return
    request = await read_json(ex)
    if request is None:
        return
    password = request.get("password")
    if not isinstance(password, str):
        await error(ex, 400, "invalid_request", 'expected {"password": ...}')
        return
    await services.directory.set_password(password)
    # The page that set it is the admin: it gets a session so it is not locked out.
    await reply(
        ex,
        200,
        session_document(services, ex, Caller("admin")),
        [_cookie_for(services, ex, Caller("admin"))],
    )


def _limits(value: Any) -> UserLimits:
    """Limits from JSON: whole numbers 1..MAX_LIMIT (or null), a share in (0, 100].

    Checked here, before any conversion: ``1e309`` is infinity and ``10**19`` does not fit
    SQLite's INTEGER; either used to be a 500.
    """
    if value is None:
        return UserLimits()
    if not isinstance(value, dict):
        raise AuthError('limits: expected {"rpm": ..., "streams": ..., "share_pct": ...}')
    rpm = _whole(value.get("rpm"), "rpm")
    streams = _whole(value.get("streams"), "streams")
    share = value.get("share_pct")
    if share in (None, ""):
        share_pct = None
    elif isinstance(share, int | float) and not isinstance(share, bool) and 0 < share <= 100:
        share_pct = float(share)
    else:
        raise AuthError("limits: share_pct must be a number more than 0 and at most 100, or null")
    return UserLimits(rpm, streams, share_pct)


def _whole(value: Any, name: str) -> int | None:
    if value in (None, ""):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_LIMIT:
        return value
    raise AuthError(f"limits: {name} must be a whole number from 1 to {MAX_LIMIT}, or null")


async def _list_users(ex: Exchange, services: DashboardServices) -> None:
    await reply(ex, 200, {"users": await user_documents(services.directory)})


async def _add_user(ex: Exchange, services: DashboardServices) -> None:
    request = await read_json(ex)
    if request is None:
        return
    name = request.get("name")
    if not isinstance(name, str):
        await error(ex, 400, "invalid_request", 'expected {"name": ..., "limits"?: {...}}')
        return
    user, key = await services.directory.add_user(name, _limits(request.get("limits")))
    await reply(ex, 201, {"user": describe_user(services.directory, user), "key": key})


async def _set_limits(ex: Exchange, services: DashboardServices, name: str) -> None:
    request = await read_json(ex)
    if request is None:
        return
    user = await services.directory.set_limits(name, _limits(request.get("limits")))
    await reply(ex, 200, {"user": describe_user(services.directory, user)})
