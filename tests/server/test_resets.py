"""C1: no reset, hang-up or half request of one connection ever ends the server.

Real ``trio-pool serve`` and ``trio-pool demo --shared`` processes, real loopback sockets,
real RSTs (SO_LINGER 0, or a close with unread data).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import trio

from tests.conftest import StartServe
from tests.procs import ROOT, Served, write_config
from tests.rawclient import (
    claude_request,
    connect,
    read_until,
    reset,
    status_of,
    websocket_handshake,
)
from trio_pool import clock
from trio_pool.testing.faults import SimConfig
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import write_pool
from trio_pool.testing.server import serve_simulator
from trio_pool.testing.state import SimState

Variant = Callable[[int], Awaitable[None]]


async def reset_fresh(port: int) -> None:
    """The audit's packet: connect, wait, RST before sending anything."""
    stream = await connect(port)
    await trio.sleep(0.2)
    await reset(stream)


async def close_with_unread_data(port: int) -> None:
    """Keep-alive GET, read 15 bytes of the answer, close: the kernel sends an RST."""
    stream = await connect(port)
    await stream.send_all(b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
    await stream.receive_some(15)
    await trio.sleep(0.05)  # the rest of the answer arrives unread
    await stream.aclose()


async def reset_mid_head(port: int) -> None:
    stream = await connect(port)
    await stream.send_all(b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-le")
    await trio.sleep(0.05)
    await reset(stream)


async def reset_mid_body(port: int) -> None:
    stream = await connect(port)
    head = b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 1000\r\n\r\n"
    await stream.send_all(head + b'{"model": ')
    await trio.sleep(0.05)
    await reset(stream)


async def reset_before_the_answer(port: int) -> None:
    stream = await connect(port)
    await stream.send_all(claude_request())
    await reset(stream)


async def reset_mid_stream(port: int) -> None:
    stream = await connect(port)
    await stream.send_all(claude_request())
    assert (await read_until(stream, b"event:")).startswith(b"HTTP/1.1 200")
    await reset(stream)


async def hang_up_mid_stream(port: int) -> None:
    stream = await connect(port)
    await stream.send_all(claude_request())
    await read_until(stream, b"event:")
    await stream.send_eof()
    await trio.sleep(0.05)
    await stream.aclose()


async def reset_mid_websocket(port: int) -> None:
    """Upgrade, start a frame, RST halfway through it."""
    stream = await connect(port)
    await stream.send_all(websocket_handshake())
    assert (await read_until(stream, b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    # A masked text frame header announcing 100 bytes, then 3 of them.
    await stream.send_all(b"\x81\xe4" + os.urandom(4) + b"abc")
    await trio.sleep(0.05)
    await reset(stream)


VARIANTS: list[Variant] = [
    reset_fresh,
    close_with_unread_data,
    reset_mid_head,
    reset_mid_body,
    reset_before_the_answer,
    reset_mid_stream,
    hang_up_mid_stream,
    reset_mid_websocket,
]


async def wait_fds_at_most(served: Served, limit: int) -> None:
    while served.fds() > limit:
        await trio.sleep(0.05)


async def test_resets_at_any_point_never_end_the_serve_process(
    tmp_path: Path, nursery: trio.Nursery, serve_process: StartServe
) -> None:
    """RSTs fresh, mid-head, mid-body, mid-stream and mid-WebSocket, and a close with unread
    data: the process keeps serving, each connection's descriptors are freed, no traceback."""
    now = clock.now()
    state = SimState.with_accounts([new_account("claude", "a", now=now)])
    state.add(new_account("codex", "a", now=now))
    state.config = SimConfig(deltas=60, event_delay_s=0.02)
    sim_base = await nursery.start(serve_simulator, state)
    await trio.to_thread.run_sync(lambda: write_pool(tmp_path / "pool", state, now=now))
    write_config(tmp_path, sim_base)
    with trio.fail_after(60):
        served = await serve_process(tmp_path)
        # Warm-up: one whole stream, so the upstream pool holds what it will hold.
        stream = await connect(served.port)
        await stream.send_all(claude_request())
        await read_until(stream, b"message_stop")
        await stream.aclose()
        assert await status_of(served.base) == 200
        baseline = served.fds()
        for round_ in range(2):
            for variant in VARIANTS:
                await variant(served.port)
                assert await status_of(served.base) == 200, (round_, variant.__name__)
        await wait_fds_at_most(served, baseline)
    assert served.alive
    assert "Traceback" not in served.text
    assert "ExceptionGroup" not in served.text


async def test_a_reset_does_not_end_demo_shared(tmp_path: Path) -> None:
    """``trio-pool demo --shared`` survives the audit's RST and a close with unread data."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "trio_pool", "demo", "--shared", "--listen", "127.0.0.1:0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        env=env,
    )
    try:
        with trio.fail_after(30):
            assert process.stdout is not None
            output = b""
            while not (found := re.search(rb"ANTHROPIC_BASE_URL=(http://[\d.]+:(\d+))", output)):
                chunk = await process.stdout.receive_some(65536)
                assert chunk, output.decode()
                output += chunk
            base, port = found.group(1).decode(), int(found.group(2))
            for variant in (reset_fresh, close_with_unread_data, reset_fresh):
                await variant(port)
                assert await status_of(base) == 200
            assert process.poll() is None
    finally:
        process.kill()
        with trio.move_on_after(5, shield=True):
            await process.wait()
