"""logs.py: redaction with its cheap pre-check, and the formatter's cached timestamps."""

from __future__ import annotations

import io
import logging

import pytest

from trio_pool.logs import _RedactingFormatter, bind, redact, setup_logging

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
    root = logging.getLogger("trio_pool")
    saved = root.handlers[:], root.level, root.propagate
    setup_logging("info", stream=out)
    try:
        bind(conn="7")
        logging.getLogger("trio_pool.test").info("x token=%s", "sk-ant-oat01-abcdefghijklmnop")
        line = out.getvalue()
        assert "abcdefghijklmnop" not in line
        assert line.rstrip().endswith("conn=7")
    finally:
        root.handlers[:], root.level, root.propagate = saved
