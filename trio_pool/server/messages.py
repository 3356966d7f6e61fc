"""Pure HTTP message helpers: request heads and header rules (no I/O)."""

from __future__ import annotations

import attrs

# Header lists are tuples of (lower-case name, value), both str (latin-1, as on the wire).
Headers = tuple[tuple[str, str], ...]

# RFC 9110 §7.6.1 connection-specific fields, plus the ones proxies conventionally drop.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


@attrs.frozen
class RequestHead:
    method: str
    target: str
    headers: Headers
    http_version: str = "1.1"
    # The target without its query, and the first value of each header: set once, they are
    # read about eight times each per request.
    path: str = attrs.field(init=False, eq=False, repr=False)
    _first: dict[str, str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "path", self.target.partition("?")[0])
        object.__setattr__(self, "_first", dict(reversed(self.headers)))

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def get(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        return self._first.get(name)

    def get_all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def wants_upgrade(self, protocol: str) -> bool:
        upgrade = self.get("upgrade") or ""
        return protocol in {p.strip().lower() for p in upgrade.split(",")}


def decode_headers(raw: list[tuple[bytes, bytes]]) -> Headers:
    return tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)


def encode_headers(headers: Headers | list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]


def end_to_end(headers: Headers, drop: frozenset[str] = HOP_BY_HOP) -> Headers:
    """Drop hop-by-hop headers (or the names in ``drop``), including any named in
    ``Connection`` (RFC 9110 §7.6.1)."""
    named = {
        token.strip().lower()
        for key, value in headers
        if key == "connection"
        for token in value.split(",")
    }
    if named:
        drop = drop | named
    return tuple([(k, v) for k, v in headers if k not in drop])


def without(headers: Headers, *names: str) -> Headers:
    drop = set(names)
    return tuple((k, v) for k, v in headers if k not in drop)
