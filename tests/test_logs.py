"""logs.py: redaction with its cheap pre-check, and the formatter's cached timestamps."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from trio_pool.logs import (
    _RedactingFormatter,
    bind,
    info_line,
    log_context,
    redact,
    setup_logging,
)

SECRETS = [
    "sk-ant-oat01-abcdefghijklmnop",
    "ya29.abcdefghijklmnop",
    "1//abcdefghijklmnop",
    "rt_abcdefghijklmnop",
    "tp-abcdefghijklmnop",
    "eyJabcdefghij.abcdefghijk.abcdefg",
    "Bearer abcdefghijklmnop",
    "BEARER abcdefghijklmnop",
    "bEaReR abcdefghijklmnop",
]


@contextmanager
def logging_to(stream: Any, level: str = "info") -> Iterator[None]:
    """Our logging set-up on ``stream`` for the block (with an empty log context), then the
    test runner's and the context as they were."""
    root = logging.getLogger("trio_pool")
    saved = root.handlers[:], root.level, root.propagate
    context = log_context.set({})
    setup_logging(level, stream=stream)
    try:
        yield
    finally:
        root.handlers[:], root.level, root.propagate = saved
        log_context.reset(context)


@pytest.mark.parametrize("secret", SECRETS)
def test_every_secret_shape_is_still_masked(secret: str) -> None:
    """The pre-check lets no token shape through: each is masked inside a longer line."""
    text = redact(f"upstream.call header={secret} conn=3")
    assert "abcdefghijklmnop" not in text
    assert "abcdefghij.abcdefghijk" not in text


def test_a_line_without_any_secret_marker_comes_back_as_it_was() -> None:
    """An access line holds no marker, so redact returns it untouched (no regex scan)."""
    line = "request.done method=POST path=/v1/messages status=200 ms=1.2 conn=4"
    assert redact(line) is line


def test_cached_timestamps_read_as_logging_writes_them() -> None:
    """The per-second cache gives logging's own "YYYY-mm-dd HH:MM:SS,mmm" for each record."""
    ours = _RedactingFormatter("%(asctime)s")
    plain = logging.Formatter("%(asctime)s")
    for created in (1_700_000_000.001, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.25):
        record = logging.LogRecord("x", logging.INFO, "f", 1, "m", None, None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert ours.formatTime(record) == plain.formatTime(record)


def test_a_logged_token_is_masked_and_the_context_is_stamped() -> None:
    """Through the real handler: the bound context fields end the line, the token is masked."""
    out = io.StringIO()
    with logging_to(out):
        bind(conn="7")
        logging.getLogger("trio_pool.test").info("x token=%s", "sk-ant-oat01-abcdefghijklmnop")
    line = out.getvalue()
    assert "abcdefghijklmnop" not in line
    assert line.rstrip().endswith("conn=7")


def test_the_fast_request_line_reads_as_logging_would_write_it() -> None:
    """info_line writes what logger.info writes through our handler: same time format, level,
    name, context and masking (only the milliseconds may differ)."""
    out = io.StringIO()
    with logging_to(out):
        bind(conn="7", account="claude/a")
        logger = logging.getLogger("trio_pool.proxy.answers")
        message = "request.done method=POST path=/v1/x%s status=200 sk-ant-oat01-abcdefghijklmnop"
        info_line(logger, message)
        logger.info("%s", message)
        fast, slow = out.getvalue().splitlines()
        stamp = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} ")
        assert stamp.match(fast)
        assert stamp.match(slow)
        assert fast[24:] == slow[24:]
        assert "abcdefghijklmnop" not in fast
        assert fast.endswith("conn=7 account=claude/a")


def test_the_request_line_goes_through_logging_under_another_set_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Where logging is set up by someone else (here pytest's caplog), the line is a record."""
    with caplog.at_level(logging.INFO, logger="trio_pool"):
        info_line(logging.getLogger("trio_pool.proxy.answers"), "request.done status=200")
    assert [r.getMessage() for r in caplog.records] == ["request.done status=200"]


def test_the_request_line_respects_the_level() -> None:
    """At level warning the request line is not written."""
    out = io.StringIO()
    with logging_to(out, "warning"):
        info_line(logging.getLogger("trio_pool.proxy.answers"), "request.done status=200")
    assert out.getvalue() == ""
