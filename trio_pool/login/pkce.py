"""PKCE (RFC 7636, S256) and state values for the OAuth logins."""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Mapping

import attrs


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def challenge_of(verifier: str) -> str:
    """The S256 code challenge of ``verifier``."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


@attrs.frozen
class Pkce:
    verifier: str = attrs.field(repr=False)
    challenge: str


def new_pkce() -> Pkce:
    """32 random bytes as the verifier, as Codex and Claude Code do."""
    verifier = b64url(secrets.token_bytes(32))
    return Pkce(verifier, challenge_of(verifier))


def new_state(*, hex_form: bool = False) -> str:
    """32 random bytes: base64url (Codex, Claude) or hex (the Gemini CLI)."""
    raw = secrets.token_bytes(32)
    return raw.hex() if hex_form else b64url(raw)


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to any query it already has (spaces as %20)."""
    query = urllib.parse.urlencode(params, quote_via=urllib.parse.quote)
    return f"{url}{'&' if '?' in url else '?'}{query}"
