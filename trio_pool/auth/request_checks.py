"""Where a request comes from and whether its target is sane (pure).

* ``host_is_loopback``: the Host header names this machine (``localhost``, ``127.0.0.1``,
  ``[::1]``, any port). In local mode every route needs it: a page on another site that
  rebinds its own name to 127.0.0.1 still sends *its* name as Host (DNS rebinding).
* ``path_problem``: dot-segments and encoded slashes are refused on every route. The
  upstreams may normalise ``/v1/models/../../api/oauth/profile`` into a path no CLI uses,
  and an encoded slash would let one path segment pass for two.
* ``client_address``: the caller's address, seen through a trusted reverse proxy's
  ``X-Forwarded-For`` only when the TCP peer is listed in ``trusted_proxies``.
"""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse

import attrs

from trio_pool.config import is_loopback
from trio_pool.server.messages import RequestHead

# %2f / %5c: an encoded "/" or "\" inside a segment; checked case-insensitively.
_ENCODED_SEPARATORS = ("%2f", "%5c")


def host_name(head: RequestHead) -> str | None:
    """The host part of the Host header (no port, no brackets); None when there is none."""
    return _host_name(head.get("host") or "")


def _host_name(host: str) -> str | None:
    host = host.strip()
    if not host:
        return None
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name if rest == "" or (rest[:1] == ":" and rest[1:].isdigit()) else host
    if host.count(":") == 1:
        name, _, port = host.partition(":")
        return name if port.isdigit() else host
    return host


def host_is_loopback(head: RequestHead) -> bool:
    """The Host header names this machine: localhost, 127.0.0.0/8 or ::1, with any port.

    ``127.0.0.1.nip.io``, ``localhost.evil.example``, ``0x7f000001`` and ``127.0.0.1:P:80``
    are not. A request without Host (HTTP/1.0) cannot come from a browser and passes.
    """
    host = head.get("host") or ""
    if not host.strip():
        return True
    return _host_is_loopback(host)


@functools.lru_cache(maxsize=64)
def _host_is_loopback(host: str) -> bool:
    """Every request asks this of its Host, and a client sends the same one each time:
    parsing it as an address costs more than the rest of the gate."""
    name = _host_name(host)
    return name is not None and is_loopback(name.lower())


def path_problem(path: str) -> str | None:
    """Why a request path is refused (dot-segments, encoded separators), or None."""
    lowered = path.lower()
    if any(sep in lowered for sep in _ENCODED_SEPARATORS):
        return "an encoded slash or backslash in the path is not allowed"
    for segment in path.split("/"):
        decoded = urllib.parse.unquote(segment)
        if decoded in (".", "..") or "\\" in decoded:
            return "dot-segments (. or ..) in the path are not allowed"
    return None


@attrs.frozen
class ClientAddress:
    host: str  # the address trio-pool attributes the request to
    forwarded: bool = False  # it came through a trusted reverse proxy


def client_address(peer_host: str, head: RequestHead, trusted: tuple[str, ...]) -> ClientAddress:
    """The request's client: the TCP peer, or (behind a trusted proxy) the rightmost
    X-Forwarded-For address that is not itself a trusted proxy.

    Only the trusted proxy's own entry can be believed: anything left of it was written by
    the client. A forwarded request never counts as "this machine".
    """
    if not trusted or not _listed(peer_host, trusted):
        return ClientAddress(peer_host)
    forwarded = [
        part.strip() for value in head.get_all("x-forwarded-for") for part in value.split(",")
    ]
    forwarded = [part for part in forwarded if part]
    if not forwarded:
        return ClientAddress(peer_host)
    for candidate in reversed(forwarded):
        if not _listed(candidate, trusted):
            return ClientAddress(candidate, forwarded=True)
    return ClientAddress(forwarded[0], forwarded=True)


def _listed(host: str, trusted: tuple[str, ...]) -> bool:
    """``host`` is one of ``trusted`` (addresses or networks such as 10.0.0.0/8)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host in trusted
    for entry in trusted:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False
