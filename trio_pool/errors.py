"""The one error tree of trio-pool.

Low-level exceptions (OSError, ssl, h11 and trio stream errors) are mapped to these at exactly one
boundary each; the rest of the code only sees these types. Every error carries a
``status_hint`` so the server can answer the CLI with a sensible status. Messages never
contain secrets: callers pass account *names*, never tokens.
"""

from __future__ import annotations


class TrioPoolError(Exception):
    """Root of every error trio-pool raises on purpose."""

    status_hint: int = 500


class ConfigError(TrioPoolError):
    """The configuration is invalid; ``problems`` lists each bad key with its reason."""

    status_hint = 500

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class CredentialsError(TrioPoolError):
    """A pool credential file cannot be used (malformed, missing fields, unreadable)."""


class StateError(TrioPoolError):
    """The shared state database (data/state.db) cannot be used."""


class NoAccountAvailable(TrioPoolError):
    """Every account of a provider is unusable right now."""

    status_hint = 429

    def __init__(self, message: str, retry_after_s: float | None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message)


class ClientDisconnected(TrioPoolError):
    """The client went away while we were reading its request (routine, not a bug)."""

    status_hint = 499  # nginx's "client closed request": nobody is left to answer


class ClientProtocolError(TrioPoolError):
    """The client sent something we cannot serve (bad HTTP, oversized head or body)."""

    status_hint = 400

    def __init__(self, message: str, status_hint: int = 400) -> None:
        self.status_hint = status_hint
        super().__init__(message)


class UpstreamError(TrioPoolError):
    """Talking to the provider failed."""

    status_hint = 502


class UpstreamConnectError(UpstreamError):
    """The connection to the provider could not be made."""


class UpstreamTimeout(UpstreamError):
    """The provider did not answer (or stopped sending) in time."""

    status_hint = 504


class UpstreamProtocolError(UpstreamError):
    """The provider broke the connection or sent something that is not HTTP."""


class TryInputError(TrioPoolError, ValueError):
    """The dashboard's /api/try body is not usable (the message is shown as a 400)."""

    status_hint = 400


class AuthError(TrioPoolError):
    """A shared-mode request cannot be done as asked (a name taken, no such user or key)."""

    status_hint = 400

    def __init__(self, message: str, status_hint: int = 400) -> None:
        self.status_hint = status_hint
        super().__init__(message)


class LoginError(TrioPoolError):
    """A login or an account operation failed; the message is one line for the user."""
