"""send_now: what the kernel takes at once, and a connection's writes over real sockets."""

from __future__ import annotations

import socket

import trio

from trio_pool.server.connection import HTTPConnection, ServerLimits
from trio_pool.server.send_now import send_now, socket_of


async def test_send_now_writes_what_fits_and_never_blocks() -> None:
    """A small write goes whole; into a full buffer nothing goes (0, no wait, no error)."""
    a, b = trio.socket.socketpair()
    with a, b:
        assert send_now(a, b"hello") == 5
        assert await b.recv(10) == b"hello"
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        while send_now(a, b"x" * 65536):
            pass
        assert send_now(a, b"more") == 0


async def test_a_closed_socket_takes_nothing() -> None:
    """After close, send_now reports 0 so that trio's send_all raises its own error."""
    a, b = trio.socket.socketpair()
    b.close()
    a.close()
    assert send_now(a, b"x") == 0


async def test_a_write_larger_than_the_buffer_arrives_whole() -> None:
    """What the kernel does not take at once goes through trio: the reader gets every byte
    in order."""
    a, b = trio.socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    stream = trio.SocketStream(a)
    assert socket_of(stream) is a
    connection = HTTPConnection(stream, ServerLimits())
    data = bytes(range(256)) * 4096  # 1 MiB
    received = bytearray()

    async def read_all() -> None:
        while len(received) < len(data):
            received.extend(await b.recv(65536))

    with trio.fail_after(10):
        async with trio.open_nursery() as inner:
            inner.start_soon(read_all)
            await connection.write(data)
    assert bytes(received) == data
    a.close()
    b.close()
