"""Pool keys: making them, hashing them, finding them in a request (pure).

A key is ``tp-`` plus 40 random url-safe characters (240 bits), so a plain sha256 is enough
to store it: nothing about a random 240-bit secret can be brute-forced from its hash, and
lookups by hash make the comparison independent of how much of a guess was right.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from trio_pool.server.messages import RequestHead

KEY_PREFIX = "tp-"
KEY_CHARS = 40
_KEY_SHAPE = re.compile(r"tp-[A-Za-z0-9_-]{40}")
NAME_SHAPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._@-]{0,39}")
# Where each CLI can carry a key without owning an account (dashboard-contract / README).
KEY_HEADERS = ("x-trio-pool-key", "x-api-key", "x-goog-api-key")


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(30)[:KEY_CHARS]


def new_key_id() -> str:
    return secrets.token_hex(6)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def key_prefix(key: str) -> str:
    """What lists show: the first four characters after ``tp-``."""
    return key[: len(KEY_PREFIX) + 4] + "…"


def looks_like_key(text: str) -> bool:
    return _KEY_SHAPE.fullmatch(text) is not None


def presented_key(head: RequestHead) -> str | None:
    """The pool key a request carries, wherever its CLI put it; None when there is none.

    A carrier holding something shaped like a pool key wins: Claude Code sends a user's
    own ``ANTHROPIC_API_KEY`` as x-api-key next to the pool key in Authorization.
    """
    found = []
    for name in KEY_HEADERS:
        value = (head.get(name) or "").strip()
        if value:
            found.append(value)
    scheme, _, token = (head.get("authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        found.append(token.strip())
    return next((v for v in found if looks_like_key(v)), found[0] if found else None)


def valid_name(name: str) -> bool:
    return NAME_SHAPE.fullmatch(name) is not None
