"""Writing to a plain TCP socket without going through trio when the kernel takes it all.

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
