"""What the Anthropic Messages API checks in a subscription (OAuth) request's body.

Claude Code marks its requests as its own with a billing block, the first ``system`` block:
``x-anthropic-billing-header: cc_version=…; cc_entrypoint=…; cch=…;`` (real-services.md §2).

* ``cch`` is an attestation over the body: the xxHash64 (seed below) of the exact body bytes
  with the value replaced by ``00000``, low 20 bits as five hex digits (CPA claude_signing.go,
  getAttributionHeader). The server checks it, so a proxy must leave the body byte for byte as
  the client sent it. ``cch=00000`` (not signed) and no ``cch`` (2.1.330 with ``-p``) are
  accepted. The real refusal's wording is UNVERIFIED; the simulator answers a 400.
* Without a billing block, a subscription's request is a third-party app's: Anthropic bills it
  as extra usage, or, with none (a simulated account with ``extra_usage`` off), answers 400
  "Third-party apps now draw from your extra usage" (earendil-works/pi#3012,
  NousResearch/hermes-agent#79758). Haiku models are let through (bytedance/deer-flow#1442).
  Which requests count as third-party is Anthropic's heuristic and changes; this is the
  documented core of it.

Pure functions of the body bytes.
"""

from __future__ import annotations

import re
from typing import Any

BILLING_PREFIX = "x-anthropic-billing-header:"
CCH_SEED = 0x6E52736AC806831E
CCH_PLACEHOLDER = b"cch=00000;"
_CCH = re.compile(rb"cch=([0-9a-f]{5});")
THIRD_PARTY_MESSAGE = (
    "Third-party apps now draw from your extra usage, not your plan limits. "
    "Add more at claude.ai/settings/usage and keep going."
)
CCH_MISMATCH_MESSAGE = "The request body does not match its attestation (cch)."

_MASK = (1 << 64) - 1
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F
_P3 = 0x165667B19E3779F9
_P4 = 0x85EBCA77C2B2AE63
_P5 = 0x27D4EB2F165667C5


def _rotl(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (64 - bits))) & _MASK


def _round(acc: int, lane: int) -> int:
    acc = (acc + lane * _P2) & _MASK
    return (_rotl(acc, 31) * _P1) & _MASK


def _merge(acc: int, value: int) -> int:
    acc ^= _round(0, value)
    return (acc * _P1 + _P4) & _MASK


def xxh64(data: bytes, seed: int = 0) -> int:
    """XXH64 of ``data`` (the reference algorithm, in pure Python: bodies are small)."""
    n = len(data)
    i = 0
    if n >= 32:
        v1 = (seed + _P1 + _P2) & _MASK
        v2 = (seed + _P2) & _MASK
        v3 = seed & _MASK
        v4 = (seed - _P1) & _MASK
        while i + 32 <= n:
            v1 = _round(v1, int.from_bytes(data[i : i + 8], "little"))
            v2 = _round(v2, int.from_bytes(data[i + 8 : i + 16], "little"))
            v3 = _round(v3, int.from_bytes(data[i + 16 : i + 24], "little"))
            v4 = _round(v4, int.from_bytes(data[i + 24 : i + 32], "little"))
            i += 32
        acc = (_rotl(v1, 1) + _rotl(v2, 7) + _rotl(v3, 12) + _rotl(v4, 18)) & _MASK
        for v in (v1, v2, v3, v4):
            acc = _merge(acc, v)
    else:
        acc = (seed + _P5) & _MASK
    acc = (acc + n) & _MASK
    while i + 8 <= n:
        acc ^= _round(0, int.from_bytes(data[i : i + 8], "little"))
        acc = (_rotl(acc, 27) * _P1 + _P4) & _MASK
        i += 8
    if i + 4 <= n:
        acc ^= (int.from_bytes(data[i : i + 4], "little") * _P1) & _MASK
        acc = (_rotl(acc, 23) * _P2 + _P3) & _MASK
        i += 4
    while i < n:
        acc ^= (data[i] * _P5) & _MASK
        acc = (_rotl(acc, 11) * _P1) & _MASK
        i += 1
    acc ^= acc >> 33
    acc = (acc * _P2) & _MASK
    acc ^= acc >> 29
    acc = (acc * _P3) & _MASK
    acc ^= acc >> 32
    return acc


def cch_of(body_with_placeholder: bytes) -> str:
    """The five hex digits Claude Code writes over ``cch=00000`` in this body."""
    return f"{xxh64(body_with_placeholder, CCH_SEED) & 0xFFFFF:05x}"


def sign(body: bytes) -> bytes:
    """``body`` with its first ``cch=00000;`` replaced by the attestation, as Claude Code does."""
    if CCH_PLACEHOLDER not in body:
        return body
    signed = f"cch={cch_of(body)};".encode()
    return body.replace(CCH_PLACEHOLDER, signed, 1)


def billing_text(request: dict[str, Any]) -> str | None:
    """The billing block's text, when the first system block is one."""
    system = request.get("system")
    first = system[0] if isinstance(system, list) and system else None
    text = first.get("text") if isinstance(first, dict) else None
    return text if isinstance(text, str) and text.startswith(BILLING_PREFIX) else None


def attestation_holds(body: bytes) -> bool:
    """False when the body carries a signed ``cch`` that is not the hash of this body."""
    match = _CCH.search(body)
    if match is None or match.group(1) == b"00000":
        return True
    unsigned = body[: match.start()] + CCH_PLACEHOLDER + body[match.end() :]
    return cch_of(unsigned) == match.group(1).decode()


def cache_ttls(request: dict[str, Any]) -> list[str]:
    """The TTL of every cache breakpoint in the body ("5m" when none is given), in order."""
    found: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            control = value.get("cache_control")
            if isinstance(control, dict):
                found.append(str(control.get("ttl") or "5m"))
            for key, item in value.items():
                if key != "cache_control":
                    visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    for key in ("tools", "system", "messages"):
        visit(request.get(key))
    return found


def third_party(request: dict[str, Any]) -> bool:
    """A subscription request that is not Claude Code's, to a model that bills it as such."""
    model = request.get("model")
    haiku = isinstance(model, str) and "haiku" in model.lower()
    return not haiku and billing_text(request) is None
