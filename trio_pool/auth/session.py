"""Dashboard sessions: a signed cookie (pure; the secret lives in state.db's settings).

The cookie is ``v2.<payload>.<mac>`` where payload is base64url JSON ``{"r": role,
"n": name, "e": expires, "g": epoch, "u": user id}`` and mac its HMAC-SHA256. Nothing in
it is secret; it cannot be forged without the secret, and it expires.

It is also bound to what should end it (the directory checks on every request):
* the epoch: the admin's (settings) or the user's (users.session_epoch), bumped on sign-out,
  on revoking one of the user's keys and on a password change, ends every older session;
* the user id: a user removed and then re-created under the same name is another user, so
  the removed one's cookie stays dead.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import attrs

from trio_pool.auth.model import Caller

COOKIE = "tp_session"
SESSION_S = 7 * 86400.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


VERSION = "v2"  # v1 cookies carried no epoch: they are refused (sign in again)


@attrs.frozen
class Session:
    """What a cookie says: who, in which session epoch, and which user (by id)."""

    caller: Caller
    epoch: int = 0
    uid: str | None = None  # the user's id; None for the admin


def sign(secret: bytes, session: Session, now: float, lifetime_s: float = SESSION_S) -> str:
    caller = session.caller
    body = json.dumps(
        {
            "r": caller.role,
            "n": caller.name,
            "e": int(now + lifetime_s),
            "g": session.epoch,
            "u": session.uid,
        }
    )
    payload = _b64(body.encode())
    return f"{VERSION}.{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, cookie: str, now: float) -> Session | None:
    """The cookie's session, or None when it is forged, malformed, old-style or expired.

    (Whether the epoch and user id are still current is the directory's question.)
    """
    version, _, rest = cookie.partition(".")
    payload, _, mac = rest.partition(".")
    if version != VERSION or not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        return None
    try:
        document = json.loads(_unb64(payload))
        role, name, expires = document["r"], document["n"], float(document["e"])
        epoch, uid = document["g"], document["u"]
    except (ValueError, KeyError, TypeError):
        return None
    if expires <= now or role not in ("admin", "user"):
        return None
    if name is not None and not isinstance(name, str):
        return None
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        return None
    if uid is not None and not isinstance(uid, str):
        return None
    return Session(Caller(role, name), epoch, uid)


def cookie_value(headers: list[str]) -> str | None:
    """Our cookie among the request's Cookie headers."""
    for header in headers:
        for part in header.split(";"):
            key, _, value = part.strip().partition("=")
            if key == COOKIE and value:
                return value
    return None


def set_cookie(value: str, *, secure: bool, lifetime_s: float = SESSION_S) -> str:
    attributes = f"{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={int(lifetime_s)}"
    return attributes + ("; Secure" if secure else "")


def clear_cookie() -> str:
    return f"{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
