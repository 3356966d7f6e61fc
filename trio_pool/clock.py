"""The one clock of the shell: unix seconds derived from trio's clock.

The pure core takes ``now`` in unix seconds, because providers give reset times as unix
timestamps and shared state outlives a process. The shell computes it as trio's clock plus
an offset fixed once per trio run, so ``MockClock`` (and ``autojump_clock``) moves it in tests.
"""

from __future__ import annotations

import time

import trio
from trio.lowlevel import RunVar

_offset: RunVar[float] = RunVar("trio_pool_wall_offset")


def now() -> float:
    """Unix seconds, moving with trio's clock."""
    try:
        offset = _offset.get()
    except LookupError:
        offset = time.time() - trio.current_time()
        _offset.set(offset)
    return offset + trio.current_time()


def to_trio_deadline(unix_s: float) -> float:
    """A unix timestamp as a trio deadline (for ``trio.sleep_until``/``move_on_at``)."""
    return trio.current_time() + (unix_s - now())
