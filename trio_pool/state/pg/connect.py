"""Opening a PostgreSQL connection for trio-pool: timeouts, keepalives, autocommit.

psycopg 3's synchronous API, used from ``trio.to_thread`` (its async API needs asyncio).
Every connection is autocommit; transactions are explicit (``with conn.transaction()``).
Server-side timeouts sit below the client's waits, so a stuck statement fails on the server
first; TCP keepalives and ``tcp_user_timeout`` bound a silently dead peer.
"""

from __future__ import annotations

import psycopg

from trio_pool.config import StateConfig
from trio_pool.errors import StateError


def redact_url(url: str) -> str:
    """The URL without a password (for logs and errors)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}@{host}"


def connect(url: str, settings: StateConfig, *, application_name: str) -> psycopg.Connection:
    """A new autocommit connection; raises StateError (without the password) on failure."""
    try:
        return psycopg.connect(
            url,
            autocommit=True,
            connect_timeout=max(1, round(settings.connect_timeout_s)),
            application_name=application_name[:63],
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=3,
            tcp_user_timeout=int(settings.connect_timeout_s * 1000) + 5000,
            options=(
                f"-c statement_timeout={settings.statement_timeout_ms} "
                f"-c lock_timeout={settings.statement_timeout_ms} "
                f"-c idle_in_transaction_session_timeout={settings.statement_timeout_ms * 5}"
            ),
        )
    except psycopg.Error as exc:
        raise StateError(f"{redact_url(url)}: cannot connect ({_reason(exc)})") from None


def _reason(exc: psycopg.Error) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
