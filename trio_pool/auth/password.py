"""The admin password, hashed with scrypt (memory-hard, in the standard library).

n=2**15, r=8: 32 MiB and about 0.1 s per guess, so a stolen state.db does not give the
password away cheaply. Stored as ``scrypt$n$r$p$salt$hash`` (base64) so the cost can grow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 1
MAX_MEM = 64 * 1024 * 1024
MIN_LENGTH = 10


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=MAX_MEM, dklen=32)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _derive(password, salt, N, R, P)
    b64 = base64.b64encode
    return f"scrypt${N}${R}${P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def password_problem(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters"
    return None
