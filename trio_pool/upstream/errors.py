"""The one place where low-level outbound failures become ours.

Every outbound step runs in one of three phases, and the phase gives a failure its meaning:

- ``CONNECT`` (TCP, the outbound proxy's CONNECT, the TLS handshake): anything that breaks
  is ``UpstreamConnectError``; the deadline is the connect timeout.
- ``HEAD`` (sending the request, waiting for the response head): the deadline is the
  first-byte timeout; a broken stream or a head h11 cannot parse is ``UpstreamProtocolError``.
- ``BODY`` (reading the response body): the deadline is the idle timeout (the longest
  silence between two reads); a cut or malformed body is ``UpstreamProtocolError``.

Every ``UpstreamTimeout`` message says "timed out" (proxy/answers.py tells 504 from 502 by
it). ``trio.ClosedResourceError`` and ``h11.LocalProtocolError`` are *our* mistakes (a
stream we closed, a message we framed wrongly) and are left alone, so a bug is never
mistaken for a provider that broke the connection.
"""

from __future__ import annotations

import enum
import ssl

import h11
import trio

from trio_pool.errors import (
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

# h11's messages can quote a line of the peer's head: keep them short in ours.
MAX_DETAIL_CHARS = 200


class NoAnswerError(Exception):
    """A connection broke or closed before the first byte of the response (the client may
    retry once on a fresh connection when this one had been idle in the pool)."""


class Phase(enum.Enum):
    CONNECT = "connect"
    HEAD = "head"
    BODY = "body"


_TIMEOUT_TEXT = {
    Phase.CONNECT: "connecting to {where} timed out after {s:g} s",
    Phase.HEAD: "{where} timed out: no response head within {s:g} s",
    Phase.BODY: "{where} timed out: nothing received for {s:g} s in the middle of the body",
}


def timed_out(where: str, phase: Phase, limit_s: float) -> UpstreamTimeout:
    return UpstreamTimeout(_TIMEOUT_TEXT[phase].format(where=where, s=limit_s))


def _describe(exc: BaseException) -> str:
    """The most telling text of a low-level error and its causes (trio wraps ssl and socket
    errors in BrokenResourceError, open_tcp_stream wraps each attempt's error)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"TLS certificate verification failed ({seen.verify_message})"
        if isinstance(seen, ssl.SSLError):
            return f"TLS failed ({seen.reason or seen})"
        if str(seen):
            break
        seen = seen.__cause__ or seen.__context__
    text = str(seen) if seen is not None else ""
    return (text or type(exc).__name__)[:MAX_DETAIL_CHARS]


def translate(exc: BaseException, where: str, phase: Phase, limit_s: float) -> UpstreamError | None:
    """Our error for a low-level outbound one, or None when it is not an outbound failure."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, trio.TooSlowError):
        return timed_out(where, phase, limit_s)
    if isinstance(exc, trio.ClosedResourceError | h11.LocalProtocolError):
        return None  # ours: see the module docstring
    if isinstance(exc, NoAnswerError):
        return UpstreamProtocolError(f"{where} closed the connection without answering: {exc}")
    if isinstance(exc, h11.RemoteProtocolError) and str(exc).startswith("peer closed"):
        return UpstreamProtocolError(
            f"{where} closed the connection before the response was complete ({exc})"
        )
    if isinstance(exc, OSError | trio.BrokenResourceError | h11.RemoteProtocolError):
        if phase is Phase.CONNECT:
            return UpstreamConnectError(f"cannot connect to {where}: {_describe(exc)}")
        if isinstance(exc, h11.RemoteProtocolError):
            return UpstreamProtocolError(f"{where} sent a malformed response: {_describe(exc)}")
        return UpstreamProtocolError(f"{where} broke the connection: {_describe(exc)}")
    return None


class map_errors:  # lower case: it reads as a function, ``with map_errors(...):``
    """Run a block whose low-level failures become ours (chained with ``from``). A class
    rather than a @contextmanager: it runs on every request, and a generator costs more."""

    __slots__ = ("limit_s", "phase", "where")

    def __init__(self, where: str, phase: Phase, limit_s: float) -> None:
        self.where, self.phase, self.limit_s = where, phase, limit_s

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if exc is None or not isinstance(exc, Exception):
            return
        mapped = translate(exc, self.where, self.phase, self.limit_s)
        if mapped is None or mapped is exc:
            return
        raise mapped from exc
