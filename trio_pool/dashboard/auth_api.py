"""The API of shared mode: sessions, friend sign-up, the admin password, users and keys.

Routes (JSON, errors as ``{"error": {"type", "message"}}``):
``/api/session`` GET/POST/DELETE, ``/api/join``, ``/api/password``, ``/api/users``,
``/api/users/NAME``, ``/api/users/NAME/keys``, ``/api/keys/ID``.
"""

from __future__ import annotations

import hmac
import logging
from typing import TYPE_CHECKING, Any

from trio_pool import clock
from trio_pool.auth.directory import describe_user
from trio_pool.auth.manage import user_documents
from trio_pool.auth.model import Caller, UserLimits
from trio_pool.auth.session import clear_cookie, cookie_value, set_cookie, sign
from trio_pool.dashboard.data_api import public_address
from trio_pool.dashboard.http import client_host, error, read_json, reply
from trio_pool.errors import AuthError, StateError
from trio_pool.server.connection import Exchange
from trio_pool.setup.instructions import instructions

if TYPE_CHECKING:
    from trio_pool.proxy.handler import Proxy

log = logging.getLogger(__name__)


def session_document(proxy: Proxy, ex: Exchange, caller: Caller) -> dict[str, Any]:
    directory = proxy.directory
    return {
        "mode": "shared" if directory.shared else "local",
        "user": {"name": caller.name, "role": caller.role} if caller.can_view else None,
        "join": directory.friend_code is not None,
        "friend_name": proxy.config.friend_name,
        "password_set": directory.password_hash is not None or proxy.config.admin_token is not None,
        "address": public_address(ex, proxy.self_url),
    }


def _cookie_for(proxy: Proxy, ex: Exchange, caller: Caller) -> tuple[str, str]:
    secure = ex.head.get("x-forwarded-proto") == "https"
    directory = proxy.directory
    value = sign(directory.secret, directory.session_for(caller), clock.now())
    return ("set-cookie", set_cookie(value, secure=secure))


async def handle(ex: Exchange, proxy: Proxy, caller: Caller, parts: list[str]) -> bool:
    """Answer the route if it is one of ours (True); False to let the next router try."""
    method = ex.head.method
    try:
        match parts, method:
            case ["api", "session"], "GET":
                await reply(ex, 200, session_document(proxy, ex, caller))
            case ["api", "session"], "POST":
                await _sign_in(ex, proxy)
            case ["api", "session"], "DELETE":
                await _sign_out(ex, proxy)
            case ["api", "join"], "POST":
                await _join(ex, proxy)
            case ["api", "password"], "POST":
                await _password(ex, proxy, caller)
            case ["api", "users"], "GET" if caller.is_admin:
                await _list_users(ex, proxy)
            case ["api", "users"], "POST" if caller.is_admin:
                await _add_user(ex, proxy)
            case ["api", "users", name], "PATCH" if caller.is_admin:
                await _set_limits(ex, proxy, name)
            case ["api", "users", name], "DELETE" if caller.is_admin:
                await proxy.directory.remove_user(name)
                await reply(ex, 200, {"name": name, "removed": True})
            case ["api", "users", name, "keys"], "POST" if _owner_or_admin(caller, name):
                record, key = await proxy.directory.issue_key(name)
                await reply(ex, 201, {"id": record.id, "key": key, "prefix": record.prefix})
            case ["api", "keys", key_id], "DELETE" if _may_revoke(proxy, caller, key_id):
                await proxy.directory.revoke_key(key_id)
                await reply(ex, 200, {"id": key_id, "revoked": True})
            case ["api", ("users" | "keys"), *_], _:
                if caller.can_view:
                    await error(ex, 403, "forbidden", "this needs the pool's admin")
                else:
                    await error(ex, 401, "unauthorized", "sign in first")
            case _:
                return False
    except AuthError as exc:
        await error(ex, exc.status_hint, "invalid_request", str(exc))
    except StateError as exc:
        log.error("dashboard.state.failed reason=%s", exc)
        await error(ex, 503, "unavailable", "data/state.db is unavailable; see the proxy log")
    return True


def _owner_or_admin(caller: Caller, name: str) -> bool:
    return caller.is_admin or (caller.role == "user" and caller.name == name)


def _may_revoke(proxy: Proxy, caller: Caller, key_id: str) -> bool:
    key = proxy.directory.keys.get(key_id)
    return caller.is_admin or (key is not None and _owner_or_admin(caller, key.user))


async def _throttled(ex: Exchange, proxy: Proxy, what: str) -> bool:
    wait = proxy.directory.throttle.retry_after(client_host(ex), clock.now())
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


async def _failed(ex: Exchange, proxy: Proxy, what: str, message: str) -> None:
    proxy.directory.throttle.failed(client_host(ex), clock.now())
    log.warning("dashboard.sign_in.refused client=%s what=%s", ex.client, what)
    await error(ex, 401, "unauthorized", message)


async def _sign_in(ex: Exchange, proxy: Proxy) -> None:
    request = await read_json(ex)
    if request is None or await _throttled(ex, proxy, "sign-in"):
        return
    directory = proxy.directory
    password, key = request.get("password"), request.get("key")
    if isinstance(password, str) and password:
        token = proxy.config.admin_token
        if directory.password_hash is None and token is None:
            await error(ex, 409, "no_password", "no admin password is set (trio-pool password)")
            return
        # The admin_token signs in as well as the password (it is already an admin secret).
        by_token = token is not None and hmac.compare_digest(password.encode(), token.encode())
        if not by_token and not await directory.check_password(password):
            await _failed(ex, proxy, "password", "wrong password")
            return
        caller = Caller("admin")
    elif isinstance(key, str) and key:
        user = directory.authenticate(key.strip(), clock.now())
        if user is None:
            await _failed(ex, proxy, "key", "unknown or revoked key")
            return
        caller = Caller("user", user.name)
    else:
        await error(ex, 400, "invalid_request", 'expected {"password": ...} or {"key": ...}')
        return
    directory.throttle.succeeded(client_host(ex))
    log.info("dashboard.signed_in role=%s user=%s", caller.role, caller.name)
    document = session_document(proxy, ex, caller)
    await reply(ex, 200, document, [_cookie_for(proxy, ex, caller)])


async def _sign_out(ex: Exchange, proxy: Proxy) -> None:
    """Clear the cookie, and end the session itself: a copy of the cookie (taken from the
    browser, say) must not outlive the sign-out. Every session of that caller ends."""
    cookie = cookie_value(ex.head.get_all("cookie"))
    signed_in = None if cookie is None else proxy.directory.session_caller(cookie, clock.now())
    if signed_in is not None:
        await proxy.directory.end_sessions(signed_in)
        log.info("dashboard.signed_out role=%s user=%s", signed_in.role, signed_in.name)
    document = session_document(proxy, ex, Caller("anonymous"))
    await reply(ex, 200, document, [("set-cookie", clear_cookie())])


async def _join(ex: Exchange, proxy: Proxy) -> None:
    directory = proxy.directory
    expected = directory.friend_code
    if expected is None:
        await error(ex, 404, "not_found", "this pool does not take sign-ups (no friend_code)")
        return
    request = await read_json(ex)
    if request is None or await _throttled(ex, proxy, "friend code"):
        return
    code, name = request.get("code"), request.get("name")
    if not isinstance(code, str) or not isinstance(name, str):
        await error(ex, 400, "invalid_request", 'expected {"code": ..., "name": ...}')
        return
    if not hmac.compare_digest(code.strip().encode(), expected.encode()):
        await _failed(ex, proxy, "friend code", "wrong friend code")
        return
    directory.throttle.succeeded(client_host(ex))
    user, key = await directory.add_user(name)
    caller = Caller("user", user.name)
    log.info("dashboard.friend.joined user=%s", user.name)
    document = {
        "user": {"name": user.name, "role": "user"},
        "key": key,
        "setup": instructions(public_address(ex, proxy.self_url), key),
    }
    await reply(ex, 201, document, [_cookie_for(proxy, ex, caller)])


async def _password(ex: Exchange, proxy: Proxy, caller: Caller) -> None:
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
    await proxy.directory.set_password(password)
    # The page that set it is the admin: it gets a session so it is not locked out.
    await reply(
        ex,
        200,
        session_document(proxy, ex, Caller("admin")),
        [_cookie_for(proxy, ex, Caller("admin"))],
    )


def _limits(value: Any) -> UserLimits:
    if value is None:
        return UserLimits()
    if not isinstance(value, dict):
        raise AuthError('limits: expected {"rpm": ..., "streams": ..., "share_pct": ...}')
    try:
        rpm, streams, share = value.get("rpm"), value.get("streams"), value.get("share_pct")
        return UserLimits(
            None if rpm in (None, "") else int(rpm),
            None if streams in (None, "") else int(streams),
            None if share in (None, "") else float(share),
        )
    except (TypeError, ValueError):
        raise AuthError("limits: numbers or null expected") from None


async def _list_users(ex: Exchange, proxy: Proxy) -> None:
    await reply(ex, 200, {"users": await user_documents(proxy.directory)})


async def _add_user(ex: Exchange, proxy: Proxy) -> None:
    request = await read_json(ex)
    if request is None:
        return
    name = request.get("name")
    if not isinstance(name, str):
        await error(ex, 400, "invalid_request", 'expected {"name": ..., "limits"?: {...}}')
        return
    user, key = await proxy.directory.add_user(name, _limits(request.get("limits")))
    await reply(ex, 201, {"user": describe_user(proxy.directory, user), "key": key})


async def _set_limits(ex: Exchange, proxy: Proxy, name: str) -> None:
    request = await read_json(ex)
    if request is None:
        return
    user = await proxy.directory.set_limits(name, _limits(request.get("limits")))
    await reply(ex, 200, {"user": describe_user(proxy.directory, user)})
