"""Log lines written in batches, when the event loop is about to wait for I/O.

A line written on its own is one write syscall (stderr has no buffer), and the proxy writes
one line per request: about 4 % of its CPU under load (py-spy, bench/). While the loop
runs, our handler keeps the lines, and this instrument writes them each time the loop is
about to wait (under load, every handful of requests; at rest, right after the line), so a
line is never held back while the proxy sits idle. Warnings and errors go out at once.
"""

from __future__ import annotations

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
    no instruments (lines written one by one, as before) unless setup_logging ran."""
    handler = our_handler()
    if handler is None:
        yield []
        return
    handler.deferred = True
    try:
        yield [_FlushBeforeWait()]
    finally:
        handler.deferred = False
        handler.flush_now()
