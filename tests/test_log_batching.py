"""log_batching: request lines wait in our handler and go out when the loop waits."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.test_logs import logging_to
from trio_pool.log_batching import lines_flushed_when_idle
from trio_pool.logs import info_line, our_handler

LOG = logging.getLogger("trio_pool.test_batching")


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "log.txt"
    with path.open("w", encoding="utf-8", buffering=1) as stream, logging_to(stream):
        yield path


def test_lines_go_out_when_the_loop_waits_and_warnings_at_once(log_file: Path) -> None:
    """A request line is held until the loop is about to wait; a warning is written at once."""
    seen: dict[str, str] = {}

    def read() -> str:
        return log_file.read_text()  # a small local file: read at once, on purpose

    async def main() -> None:
        info_line(LOG, "request.done one")
        info_line(LOG, "request.done two")
        seen["before the wait"] = read()
        await trio.sleep(0.001)  # the loop waits for I/O: the lines are flushed first
        seen["after the wait"] = read()
        LOG.warning("something.wrong")
        seen["after a warning"] = read()

    with lines_flushed_when_idle() as instruments:
        assert instruments
        trio.run(main, instruments=instruments)
    assert seen["before the wait"] == ""
    lines = seen["after the wait"].splitlines()
    assert [line.split(": ", 1)[1] for line in lines] == ["request.done one", "request.done two"]
    assert seen["after a warning"].rstrip().endswith("something.wrong")


def test_after_the_loop_lines_are_flushed_one_by_one_again(log_file: Path) -> None:
    """Leaving the block writes what is left and turns line-by-line flushing back on."""
    with lines_flushed_when_idle():
        info_line(LOG, "request.done held")
    assert "request.done held" in log_file.read_text()
    info_line(LOG, "request.done after")
    assert log_file.read_text().rstrip().endswith("request.done after")


class _CountingStream(io.StringIO):
    """A stream like Python's stderr, which has no buffer: each write is one syscall."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_waiting_for_the_loop_are_written_with_one_call() -> None:
    """Three request lines and a wait: one write, the lines in order; a warning that comes
    while lines wait is written after them, at once."""
    stream = _CountingStream()

    async def main() -> None:
        for n in range(3):
            info_line(LOG, f"request.done {n}")
        assert stream.writes == 0
        await trio.sleep(0.001)
        assert stream.writes == 1
        info_line(LOG, "request.done 3")
        LOG.warning("something.wrong")
        assert stream.writes == 2

    with logging_to(stream), lines_flushed_when_idle() as instruments:
        trio.run(main, instruments=instruments)
    messages = [line.split(": ", 1)[1] for line in stream.getvalue().splitlines()]
    assert messages == [*(f"request.done {n}" for n in range(4)), "something.wrong"]


def test_a_long_run_without_a_wait_writes_its_lines_in_bounded_batches() -> None:
    """A loop that never waits still writes: every MAX_WAITING lines."""
    stream = _CountingStream()
    with logging_to(stream), lines_flushed_when_idle():
        handler = our_handler()
        assert handler is not None
        for n in range(handler.MAX_WAITING * 2):
            info_line(LOG, f"request.done {n}")
        assert stream.writes == 2
    assert len(stream.getvalue().splitlines()) == handler.MAX_WAITING * 2
