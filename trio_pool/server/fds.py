"""File descriptors: the process limit, and how many client connections fit under it.

Every proxied request holds two descriptors (the client's socket and the upstream's), and the
process needs more for state.db, pool-file reads, the token endpoints and the listeners. A
connection cap that leaves a reserve keeps "Too many open files" from ever reaching those:
past the cap new clients wait in the kernel's accept backlog instead.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

FD_RESERVE = 64  # state.db, pool files, token calls, listeners, logging
FDS_PER_CONNECTION = 2  # the client's socket and one upstream socket
AUTO_MAX_CONNECTIONS = 4096  # even with a huge fd limit: bounded memory
MIN_CONNECTIONS = 8


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.

    systemd and most shells start services with a soft limit of 1024 and a far higher hard
    limit; the soft one is ours to raise. Platforms without ``resource`` keep their limit.
    """
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return 0
    infinity = resource.RLIM_INFINITY
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit: ask for a large finite number (the kernel caps it anyway).
    target = hard if hard != infinity else max(soft, 1 << 20)
    if soft == infinity or soft >= target:
        return 0 if soft == infinity else int(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        # macOS refuses values above kern.maxfilesperproc even under an infinite hard limit.
        log.info("server.fd_limit.unchanged soft=%d reason=%s", soft, exc)
        return int(soft)
    if target != soft:
        log.info("server.fd_limit.raised from=%d to=%d", soft, target)
    return int(target)


def connection_cap(fd_limit: int, configured: int = 0) -> int:
    """The most client connections to hold open at once.

    ``configured`` (``max_connections`` in config.toml) wins when set; otherwise what fits
    under ``fd_limit`` after the reserve, bounded to AUTO_MAX_CONNECTIONS.
    """
    if configured > 0:
        return configured
    if fd_limit <= 0:
        return AUTO_MAX_CONNECTIONS
    fitting = (fd_limit - FD_RESERVE) // FDS_PER_CONNECTION
    return max(MIN_CONNECTIONS, min(AUTO_MAX_CONNECTIONS, fitting))
