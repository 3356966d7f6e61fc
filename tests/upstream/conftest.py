"""Fixtures of the upstream tests: TLS contexts with a throwaway CA (trustme)."""

from __future__ import annotations

import ssl

import attrs
import pytest
import trustme

# Names the test certificates hold (and the test proxy maps to loopback ports): nothing
# here resolves a real name.
NAMES = ("127.0.0.1", "upstream.test", "ws.test")


@attrs.frozen
class Tls:
    server: ssl.SSLContext
    client: ssl.SSLContext


@pytest.fixture(scope="module")
def tls() -> Tls:
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*NAMES).configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return Tls(server, client)
