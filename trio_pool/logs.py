"""Logging: one setup function, a context filter and the one redaction function.

The connection task sets ``log_context`` (conn=, req=, provider=, account=); trio copies
contextvars into child tasks, so every line logged on behalf of a request carries them.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from typing import Any

# A mapping that is never mutated: ``bind`` sets a new dict each time.
_EMPTY: dict[str, str] = {}
log_context: contextvars.ContextVar[dict[str, str]] = contextvars.ContextVar(
    "trio_pool_log_context", default=_EMPTY
)

# Token shapes of all three providers, plus JWTs and generic bearer values. What matches is
# replaced by a masked form that keeps only the last four characters.
_SECRET_PATTERNS = re.compile(
    r"(sk-ant-[a-z]{2,4}\d{2}-[A-Za-z0-9_\-]{8,})"  # Anthropic OAuth / API tokens
    r"|(ya29\.[A-Za-z0-9_\-.]{8,})"  # Google access tokens
    r"|(1//[A-Za-z0-9_\-]{8,})"  # Google refresh tokens
    r"|(rt_[A-Za-z0-9_\-.]{8,})"  # OpenAI refresh tokens
    r"|(tp-[A-Za-z0-9_\-]{8,})"  # trio-pool's own pool keys
    r"|(eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*)"  # JWTs
    r"|((?i:bearer)\s+[A-Za-z0-9_\-.~+/=]{8,})"
)


def mask(secret: str) -> str:
    """A display form of a secret: its kind prefix and last four characters, never more."""
    if len(secret) <= 12:
        return "…"
    prefix = secret[:7] if secret.startswith("sk-ant-") else secret[:3]
    return f"{prefix}…{secret[-4:]}"


def redact(text: str) -> str:
    """Replace every token-looking substring of ``text`` by its masked form."""

    def _sub(match: re.Match[str]) -> str:
        value = match.group(0)
        if value.lower().startswith("bearer"):
            scheme, _, token = value.partition(" ")
            return f"{scheme} {mask(token.strip())}"
        return mask(value)

    return _SECRET_PATTERNS.sub(_sub, text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        fields = log_context.get()
        record.ctx = "".join(f" {k}={v}" for k, v in fields.items())
        return True


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(level: str = "info", *, stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_ContextFilter())
    handler.setFormatter(
        _RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(ctx)s")
    )
    root = logging.getLogger("trio_pool")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def bind(**fields: str) -> contextvars.Token[dict[str, str]]:
    """Add fields to the log context of the current task (and the tasks it starts)."""
    return log_context.set({**log_context.get(), **fields})
