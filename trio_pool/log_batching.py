"""Log lines written in batches, when the event loop is about to wait for I/O.

A line flushed on its own is one write syscall, and the proxy writes one line per request:
that was about 5 % of its CPU under load (py-spy, bench/). While the loop runs, our handler
keeps lines in the stream's buffer, and this instrument flushes them each time the loop is
about to wait (under load, every handful of requests; at rest, right after the line), so a
line is never held back while the proxy sits idle. Warnings and errors go out at once.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from trio_pool.logs import our_handler


class _FlushBeforeWait(trio.abc.Instrument):
    def before_io_wait(self, timeout: float) -> None:
        handler = our_handler()
        if handler is not None:
            handler.flush_now()


@contextmanager
def lines_flushed_when_idle() -> Iterator[list[trio.abc.Instrument]]:
    """``with lines_flushed_when_idle() as instruments: trio.run(..., instruments=...)``;
    no instruments (lines flushed one by one, as before) unless our handler writes to a
    text stream that can turn its line buffering off."""
    handler = our_handler()
    stream = None if handler is None else handler.stream
    if handler is None or not isinstance(stream, io.TextIOWrapper):
        yield []
        return
    line_buffering = stream.line_buffering
    stream.reconfigure(line_buffering=False)
    handler.deferred = True
    try:
        yield [_FlushBeforeWait()]
    finally:
        handler.deferred = False
        stream.reconfigure(line_buffering=line_buffering)
        handler.flush()
