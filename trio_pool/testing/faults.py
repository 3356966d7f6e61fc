"""The shape of simulated replies and the faults a simulator can inject (pure values).

``SimConfig`` is frozen and hashable so that the encoded event bytes derived from it can be
cached: the benchmarks compare the proxy's CPU against a direct run to the simulator, so the
simulator must spend as little as possible per request.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import attrs

# What a forced fault answers, in each provider's own shape:
#   quota        the account's real quota 429 (Codex usage_limit_reached, Claude unified
#                rejected, Gemini RESOURCE_EXHAUSTED/QUOTA_EXHAUSTED)
#   throttle     a request-scoped 429 that says nothing about the account's quota
#   overloaded   Claude 529 overloaded_error, Codex 503 server_is_overloaded, Gemini 503
#   server_error 500
#   unauthorized 401 as for an expired token
# Account errors of the real services (real-services.md §1, §2; Gemini answers them as
# unauthorized):
#   cloudflare            Cloudflare's HTML 403 challenge (text/html, cf-mitigated)
#   deactivated_workspace Codex 402 {"detail":{"code":"deactivated_workspace"}}
#   usage_not_included    Codex 429 usage_not_included: the plan has no Codex
#   revoked               Claude 403 "OAuth token has been revoked" (a refresh fixes it)
#   org_disabled          Claude 403 "This organization has been disabled."
FaultKind = Literal[
    "quota",
    "throttle",
    "overloaded",
    "server_error",
    "unauthorized",
    "cloudflare",
    "deactivated_workspace",
    "usage_not_included",
    "revoked",
    "org_disabled",
]
FAULT_KINDS: tuple[FaultKind, ...] = (
    "quota",
    "throttle",
    "overloaded",
    "server_error",
    "unauthorized",
    "cloudflare",
    "deactivated_workspace",
    "usage_not_included",
    "revoked",
    "org_disabled",
)

# How a stream fails after ``fail_after_events`` events: "close" drops the connection
# without ending the chunked body (the client sees a truncated message); "error_event"
# sends the provider's in-stream error event and ends the body cleanly.
FailMode = Literal["close", "error_event"]

DEFAULT_TEXT = "Hello from the trio-pool simulator."


@attrs.frozen
class SimConfig:
    """How replies look and misbehave; one per simulator, optionally one per account."""

    deltas: int = 3  # number of text delta events (Gemini: number of chunks)
    # Text bytes per delta; None splits ``text`` over the deltas instead.
    delta_bytes: int | None = None
    text: str = DEFAULT_TEXT
    event_delay_s: float = 0.0  # trio.sleep between two events
    first_byte_delay_s: float = 0.0  # trio.sleep before the response head
    fail_after_events: int | None = None  # count of events sent before the stream fails
    fail_mode: FailMode = "close"
    model: str | None = None  # reported model; None echoes the request's model
    # Token endpoints: the new tokens are issued (the old refresh token is spent) at once,
    # and the answer leaves this much later, as over a slow network.
    token_delay_s: float = 0.0

    def __attrs_post_init__(self) -> None:
        if self.deltas < 1:
            raise ValueError("deltas must be at least 1")
        if self.delta_bytes is not None and self.delta_bytes < 1:
            raise ValueError("delta_bytes must be at least 1")

    @property
    def streams_plainly(self) -> bool:
        """True when the whole stream can be written at once (no delay, no fault)."""
        return self.event_delay_s <= 0 and self.fail_after_events is None


@lru_cache(maxsize=64)
def text_pieces(config: SimConfig) -> tuple[str, ...]:
    """The reply text cut into ``config.deltas`` pieces (each non-empty)."""
    if config.delta_bytes is not None:
        source = config.text or "x"
        repeats = config.delta_bytes // len(source) + 1
        piece = (source * repeats)[: config.delta_bytes]
        # Make pieces distinct enough to spot reordering in tests: number each one.
        return tuple(_numbered(piece, i) for i in range(config.deltas))
    text = config.text or "."
    if len(text) < config.deltas:
        text = text.ljust(config.deltas, ".")
    size, extra = divmod(len(text), config.deltas)
    pieces = []
    start = 0
    for i in range(config.deltas):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return tuple(pieces)


def _numbered(piece: str, index: int) -> str:
    tag = f"{index}:"
    if len(tag) >= len(piece):
        return piece
    return tag + piece[len(tag) :]


def full_text(config: SimConfig) -> str:
    return "".join(text_pieces(config))


def output_tokens(config: SimConfig) -> int:
    """A stable token count for the reply (about four characters a token)."""
    return max(1, len(full_text(config)) // 4)


def input_tokens(body_size: int) -> int:
    return max(1, body_size // 4)
