"""Pure checks of a request's Host, path and client address."""

from __future__ import annotations

import pytest

from trio_pool.auth.request_checks import client_address, host_is_loopback, path_problem
from trio_pool.server.messages import RequestHead


def head(host: str | None = None, **headers: str) -> RequestHead:
    fields = [("host", host)] if host is not None else []
    fields += [(k.replace("_", "-"), v) for k, v in headers.items()]
    return RequestHead("GET", "/", tuple(fields))


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8989", "LocalHost:1", "127.0.0.1", "127.0.0.1:8989", "127.9.9.9:1",
     "[::1]", "[::1]:8989", " 127.0.0.1"],
)  # fmt: skip
def test_loopback_host_names_pass(host: str) -> None:
    """This machine by name or address, with or without a port."""
    assert host_is_loopback(head(host))


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1.nip.io", "localhost.evil.example", "0x7f000001", "2130706433", "127.1",
     "127.0.0.1:8989:80", "127.0.0.1:x", "[::1]:x", "[::1]evil", "evil.test",
     "[::ffff:127.0.0.1]", "localhost:", "0.0.0.0", "", "   "],
)  # fmt: skip
def test_other_host_names_do_not(host: str) -> None:
    """Look-alikes, numeric tricks and malformed ports are not this machine."""
    if not host.strip():
        # No Host at all (HTTP/1.0) cannot come from a browser: it passes.
        assert host_is_loopback(head(host))
        return
    assert not host_is_loopback(head(host))


@pytest.mark.parametrize(
    "path",
    ["/a/../b", "/..", "/a/./b", "/a/%2e%2e/b", "/a/%2E%2e/b", "/a/.%2e", "/a%2fb", "/a%2Fb",
     "/a%5cb", "/a/..\\b", "/a/%2e"],
)  # fmt: skip
def test_dot_segments_and_encoded_separators_are_problems(path: str) -> None:
    """Whatever the spelling, a path that could climb or split a segment is refused."""
    assert path_problem(path) is not None


@pytest.mark.parametrize(
    "path", ["/", "/v1/messages", "/v1internal:streamGenerateContent", "/a/..b/c.", "/a/b%20c"]
)
def test_ordinary_paths_are_not(path: str) -> None:
    """Dots inside a name and other escapes are fine."""
    assert path_problem(path) is None


def test_forwarded_for_is_ignored_unless_the_peer_is_trusted() -> None:
    """Off by default: X-Forwarded-For from anyone is just a header."""
    request = head("x", x_forwarded_for="203.0.113.9")
    assert client_address("127.0.0.1", request, ()).host == "127.0.0.1"
    assert not client_address("127.0.0.1", request, ()).forwarded
    assert client_address("10.0.0.5", request, ("127.0.0.1",)).host == "10.0.0.5"


def test_a_trusted_proxy_names_the_client_and_makes_it_remote() -> None:
    """The rightmost untrusted entry is the client; a spoofed left part is not believed."""
    request = head("x", x_forwarded_for="1.2.3.4, 203.0.113.9")
    found = client_address("127.0.0.1", request, ("127.0.0.1",))
    assert (found.host, found.forwarded) == ("203.0.113.9", True)
    chained = head("x", x_forwarded_for="203.0.113.9, 10.1.2.3")
    found = client_address("127.0.0.1", chained, ("127.0.0.1", "10.0.0.0/8"))
    assert found.host == "203.0.113.9"
    spoofed_local = head("x", x_forwarded_for="127.0.0.1")
    found = client_address("127.0.0.1", spoofed_local, ("127.0.0.1",))
    assert found.forwarded  # forwarded, so never "this machine" whatever it claims
    assert not client_address("127.0.0.1", head("x"), ("127.0.0.1",)).forwarded
