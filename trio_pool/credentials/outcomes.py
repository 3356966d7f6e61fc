"""What a refresh comes to, in either mode: the token call's result and the refresh's outcome.

These live apart from ``fenced.py`` so that the single-host path can
name them without importing the multi-host machinery, and with it the PostgreSQL driver and
``cryptography`` (about 20 MB of a proxy's resident memory).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import attrs


@attrs.frozen
class Rotated:
    """The provider rotated the tokens: its answer, merged into the document."""

    document: dict[str, Any] = attrs.field(repr=False)


@attrs.frozen
class Rejected:
    """The provider refused the refresh token for good (needs re-login)."""

    reason: str


@attrs.frozen
class Failed:
    """No new tokens. ``sent``: the call may have reached the provider (unknown outcome)."""

    reason: str
    retry_after_s: float | None = None
    sent: bool = False
    at_least_s: float | None = None  # the endpoint's Retry-After: never ask sooner
    busy: bool = False  # another host holds the lease: its write-back will be adopted


@attrs.frozen
class Adopted:
    """Another host (or an import) stored newer credentials; nothing was sent."""

    document: dict[str, Any] = attrs.field(repr=False)
    version: int


@attrs.frozen
class Stored:
    """Our rotation, stored (``version``), or kept pending a write-back (version None)."""

    document: dict[str, Any] = attrs.field(repr=False)
    version: int | None


SendResult = Rotated | Rejected | Failed
Outcome = Adopted | Stored | Rejected | Failed
Send = Callable[[dict[str, Any]], Awaitable[SendResult]]
AccessOf = Callable[[dict[str, Any]], str]
