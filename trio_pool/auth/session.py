"""Dashboard sessions: a signed cookie (pure; the secret lives in state.db's settings).

The cookie is ``v1.<payload>.<mac>`` where payload is base64url JSON ``{"r": role,
"n": name, "e": expires}`` and mac its HMAC-SHA256. Nothing in it is secret; it cannot be
forged without the secret, and it expires. A user's session also ends when the user is
removed (the directory checks the name on every request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

from trio_pool.auth.model import Caller

COOKIE = "tp_session"
SESSION_S = 7 * 86400.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, payload: str) -> str:
    return _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())


def sign(secret: bytes, caller: Caller, now: float, lifetime_s: float = SESSION_S) -> str:
    body = json.dumps({"r": caller.role, "n": caller.name, "e": int(now + lifetime_s)})
    payload = _b64(body.encode())
    return f"v1.{payload}.{_mac(secret, payload)}"


def verify(secret: bytes, cookie: str, now: float) -> Caller | None:
    """The session's caller, or None when the cookie is forged, malformed or expired."""
    version, _, rest = cookie.partition(".")
    payload, _, mac = rest.partition(".")
    if version != "v1" or not hmac.compare_digest(mac.encode(), _mac(secret, payload).encode()):
        return None
    try:
        document = json.loads(_unb64(payload))
        role, name, expires = document["r"], document["n"], float(document["e"])
    except (ValueError, KeyError, TypeError):
        return None
    if expires <= now or role not in ("admin", "user"):
        return None
    if name is not None and not isinstance(name, str):
        return None
    return Caller(role, name)


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
