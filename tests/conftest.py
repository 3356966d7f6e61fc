"""Shared fixtures: every test is bounded, and nothing reaches beyond loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import trio

from tests.procs import Served, start_serve

StartServe = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve_process(nursery: trio.Nursery) -> AsyncIterator[StartServe]:
    """serve_process(workdir, prefix=None) -> a running ``trio-pool serve``; killed at the end."""
    started: list[Served] = []

    async def start(workdir: Path, *, prefix: list[str] | None = None) -> Served:
        served = await start_serve(nursery, workdir, prefix=prefix)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.process.returncode is None:
            served.process.kill()
            with trio.move_on_after(5, shield=True):
                await served.process.wait()
