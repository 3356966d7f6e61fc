"""Writing to (and reading from) a plain TCP socket without trio's socket layer.

trio's ``SocketStream.send_all`` costs about 3.5 µs of Python per call before the write
(a conflict detector, an error-translating context manager, a memoryview, the checkpoint
of its socket layer), and our write timeout wraps each call in a cancel scope (6.7 µs).
Almost every write of a proxy on a local or LAN link fits in the socket's send buffer at
once, so the connection first offers the bytes to the kernel directly; only what the kernel
could not take at once goes through trio, under the timeout.

The socket is non-blocking (trio makes it so), so ``os.write`` never blocks: it writes what
fits and returns the count, or raises ``BlockingIOError`` when nothing fits. Other OSErrors
(EPIPE, ECONNRESET) are raised as they are; the callers map them.
"""

from __future__ import annotations

import os
import sys

import trio

# os.write works on socket descriptors on POSIX only.
ENABLED = sys.platform != "win32"


def socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket of a plain TCP stream (None for TLS and memory streams: through trio)."""
    if ENABLED and isinstance(stream, trio.SocketStream):
        return stream.socket
    return None


def send_now(sock: trio.socket.SocketType, data: bytes) -> int:
    """Bytes of ``data`` the kernel took at once (0: none fit, or the socket is closed)."""
    fd = sock.fileno()
    if fd < 0:
        return 0  # closed: trio's send_all raises the right error
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0


def receive_now(sock: trio.socket.SocketType, max_bytes: int) -> bytes | None:
    """What the socket holds right now (b"" at the peer's close), or None when nothing is
    there yet. No checkpoint: the caller yields soon after (it waits for an upstream)."""
    fd = sock.fileno()
    if fd < 0:
        return None  # closed: the trio path raises the right error
    try:
        return os.read(fd, max_bytes)
    except BlockingIOError:
        return None


async def receive_when_ready(sock: trio.socket.SocketType, max_bytes: int) -> bytes:
    """One read of a socket whose bytes are not there yet (an upstream's answer right after
    the request): wait until it is readable, then read.

    trio's ``receive_some`` tries the read first, and when nothing is there that costs a
    failed syscall and a BlockingIOError before the same wait. b"" at the peer's close;
    OSErrors (ECONNRESET) are raised as they are.
    """
    while True:
        await trio.lowlevel.wait_readable(sock)
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the socket was closed")
        try:
            return os.read(fd, max_bytes)
        except BlockingIOError:
            continue  # a spurious wake-up: wait again
