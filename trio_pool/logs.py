"""Logging: one setup function, a context filter and the one redaction function.

The connection task sets ``log_context`` (conn=, req=, provider=, account=); trio copies
contextvars into child tasks, so every line logged on behalf of a request carries them.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
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


# Every pattern above starts with one of these (bearer in any case): a text holding none of
# them has nothing to redact. Most log lines hold none, and this check costs a sixteenth of
# the regex's scan.
_MARKERS = ("sk-ant-", "ya29.", "1//", "rt_", "tp-", "eyJ")


def mask(secret: str) -> str:
    """A display form of a secret: its kind prefix and last four characters, never more."""
    if len(secret) <= 12:
        return "…"
    prefix = secret[:7] if secret.startswith("sk-ant-") else secret[:3]
    return f"{prefix}…{secret[-4:]}"


def redact(text: str) -> str:
    """Replace every token-looking substring of ``text`` by its masked form."""
    if not any(marker in text for marker in _MARKERS) and "bearer" not in text.lower():
        return text

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
        record.ctx = "".join([f" {k}={v}" for k, v in fields.items()]) if fields else ""
        return True


class _RedactingFormatter(logging.Formatter):
    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second = -1
        self._second_text = ""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        # The date and time to the second, formatted once per second (every request logs a
        # line); the milliseconds as logging.Formatter writes them.
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        return self.time_text(record.created)

    def time_text(self, created: float) -> str:
        """``created`` as logging.Formatter writes it: "YYYY-mm-dd HH:MM:SS,mmm"."""
        second = int(created)
        if second != self._second:
            record = logging.makeLogRecord({"created": float(second), "msecs": 0.0})
            self._second, self._second_text = second, super().formatTime(record)[:-4]
        return f"{self._second_text},{int((created - second) * 1000):03d}"


class _OurHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler setup_logging installs; ``info_line`` writes through it directly.

    ``deferred`` (set by log_batching while the event loop runs): lines wait in a list and
    ``flush_now`` writes them with one call. The stream cannot batch them itself: Python's
    stderr has no buffer (every write is a syscall). Warnings and errors go out at once,
    after the lines that waited; so does a list that reached ``MAX_WAITING`` lines.
    """

    deferred = False
    MAX_WAITING = 256

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []

    def write_line(self, line: str, *, at_once: bool = False) -> None:
        """Write ``line`` (newline included), or keep it for ``flush_now`` while deferred."""
        with self.lock:  # type: ignore[union-attr]
            self._waiting.append(line)
            if at_once or not self.deferred or len(self._waiting) >= self.MAX_WAITING:
                self._write_waiting()

    def flush_now(self) -> None:
        if not self._waiting:  # the loop asks before every wait: most often, nothing waits
            return
        with self.lock:  # type: ignore[union-attr]
            if self._waiting:
                self._write_waiting()

    def _write_waiting(self) -> None:
        lines, text = len(self._waiting), "".join(self._waiting)
        self._waiting.clear()
        try:
            self.stream.write(text)
            self.stream.flush()
        except Exception:  # as logging does: a broken log never breaks a request
            self.handleError(logging.makeLogRecord({"msg": f"{lines} log lines not written"}))

    def flush(self) -> None:
        self.flush_now()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        self.write_line(line, at_once=record.levelno >= logging.WARNING)


def info_line(logger: logging.Logger, message: str) -> None:
    """``logger.info(message)``, cheaper: the line every request logs.

    While the only handler is setup_logging's own, the line is formatted here exactly as
    that handler formats it (time, level, name, message, context, redaction) and handed to
    it without a LogRecord and logging's filter and formatter calls (the line was 6 % of a
    busy proxy's CPU in py-spy, bench/). With any other set-up (tests, an embedding
    program) the line goes through logging as usual.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _OUR_HANDLER
    if handler is None or _handlers_of(logger) != [handler]:
        logger.info("%s", message)
        return
    fields = log_context.get()
    ctx = "".join([f" {k}={v}" for k, v in fields.items()]) if fields else ""
    assert isinstance(handler.formatter, _RedactingFormatter)
    handler.write_line(
        redact(
            f"{handler.formatter.time_text(time.time())} INFO    {logger.name}: {message}{ctx}\n"
        )
    )


def _handlers_of(logger: logging.Logger) -> list[logging.Handler]:
    """The handlers a record of ``logger`` reaches (logging's own walk up the tree)."""
    found: list[logging.Handler] = []
    current: logging.Logger | None = logger
    while current is not None:
        found += current.handlers
        current = current.parent if current.propagate else None
    return found


_OUR_HANDLER: _OurHandler | None = None


def our_handler() -> _OurHandler | None:
    """The handler setup_logging installed, if it did."""
    return _OUR_HANDLER


def setup_logging(level: str = "info", *, stream: Any = None) -> None:
    global _OUR_HANDLER
    handler = _OurHandler(stream or sys.stderr)
    _OUR_HANDLER = handler
    handler.addFilter(_ContextFilter())
    handler.setFormatter(
        _RedactingFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(ctx)s")
    )
    # Our format uses none of the caller's file, line, thread or process: not looking them
    # up saves a third of the cost of each line (the logging HOWTO's "Optimization").
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger("trio_pool")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def bind(**fields: str) -> contextvars.Token[dict[str, str]]:
    """Add fields to the log context of the current task (and the tasks it starts)."""
    return log_context.set({**log_context.get(), **fields})
