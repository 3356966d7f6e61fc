"""The refresh lease across hosts, on the database clock (single-use refresh tokens).

A lease row per account: ``epoch`` (from a sequence, new at every take-over), ``holder``,
``until`` and ``sent_at``, the *intent mark* set just before the token call. The protocol
(``credentials/fenced.py`` drives it):

1. ``acquire``: take the lease if it is free, expired, or ours. A previous holder whose
   lease expired *after* it marked its intent, while the credential version did not move,
   may have spent the refresh token: the refresh is **in doubt**, and the taker waits
   (``doubt_left_s``) for a late write-back before spending the token itself.
2. ``mark``: set ``sent_at`` only if the lease is still ours with ``margin_s`` to spare and
   the credentials are still at the version we read; no row means **do not send**. The
   answer is what is left of the lease, which bounds the token call.
3. The write-back is a compare-and-set on the credential version
   (``credentials.compare_and_set``), not on the epoch: a holder that paused after sending
   still lands its valid new token if nobody stored a newer one, and a stale token can
   never overwrite a newer one.
4. ``release`` clears the lease (and the mark) once the outcome is known. A token call
   whose outcome is unknown (timeout, crash) leaves the mark for the next taker to see.

All times are computed by PostgreSQL (``clock_timestamp()``), so host clocks do not matter.
"""

from __future__ import annotations

import attrs
import psycopg


@attrs.frozen
class Held:
    epoch: int
    version: int | None  # the credential version when taken (None: no credentials stored)
    left_s: float  # seconds of lease left (database clock)
    # Not None: in doubt; seconds left to wait for the previous holder's write-back.
    doubt_left_s: float | None = None


@attrs.frozen
class Busy:
    holder: str
    left_s: float


def acquire(
    conn: psycopg.Connection, account: str, holder: str, ttl_s: float, doubt_wait_s: float
) -> Held | Busy:
    with conn.transaction():
        conn.execute(
            "INSERT INTO refresh_leases (account, epoch, until) VALUES (%s, 0, 'epoch') "
            "ON CONFLICT (account) DO NOTHING",
            (account,),
        )
        row = conn.execute(
            "SELECT l.holder, l.until > clock_timestamp(), "
            "EXTRACT(EPOCH FROM l.until - clock_timestamp())::float8, l.sent_at IS NOT NULL, "
            "l.base_version, EXTRACT(EPOCH FROM l.sent_at + make_interval(secs => %s) "
            "- clock_timestamp())::float8, c.version "
            "FROM refresh_leases l LEFT JOIN credentials c ON c.account = l.account "
            "WHERE l.account = %s FOR UPDATE OF l",
            (doubt_wait_s, account),
        ).fetchone()
        assert row is not None
        current, live, left, sent, base_version, doubt_left, version = row
        if live and current not in ("", holder):
            return Busy(current, float(left))
        in_doubt = bool(sent) and base_version is not None and base_version == version
        extra = max(0.0, float(doubt_left)) if in_doubt else 0.0
        (epoch, left_now) = conn.execute(
            "UPDATE refresh_leases SET epoch = nextval('lease_epoch'), holder = %s, "
            "until = clock_timestamp() + make_interval(secs => %s), "
            "sent_at = CASE WHEN %s THEN sent_at END, "
            "base_version = CASE WHEN %s THEN base_version ELSE %s END "
            "WHERE account = %s "
            "RETURNING epoch, EXTRACT(EPOCH FROM until - clock_timestamp())::float8",
            (holder, ttl_s + extra, in_doubt, in_doubt, version, account),
        ).fetchone() or (0, 0.0)
    return Held(
        int(epoch),
        None if version is None else int(version),
        float(left_now),
        float(doubt_left) if in_doubt else None,
    )


def mark(
    conn: psycopg.Connection, account: str, epoch: int, version: int, margin_s: float
) -> float | None:
    """The intent mark; seconds of lease left, or None: the lease or the credentials moved
    on, and the token must not be sent."""
    row = conn.execute(
        "UPDATE refresh_leases SET sent_at = clock_timestamp(), base_version = %s "
        "WHERE account = %s AND epoch = %s "
        "AND until > clock_timestamp() + make_interval(secs => %s) "
        "AND (SELECT version FROM credentials WHERE account = %s) = %s "
        "RETURNING EXTRACT(EPOCH FROM until - clock_timestamp())::float8",
        (version, account, epoch, margin_s, account, version),
    ).fetchone()
    return None if row is None else float(row[0])


def release(conn: psycopg.Connection, account: str, epoch: int, *, resolved: bool = True) -> bool:
    """Free the lease if it is still ours. ``resolved``: the outcome of any send is known
    (the mark is cleared); otherwise an earlier mark stays, and so does the doubt."""
    return (
        conn.execute(
            "UPDATE refresh_leases SET holder = '', until = 'epoch', "
            "sent_at = CASE WHEN %s THEN NULL ELSE sent_at END "
            "WHERE account = %s AND epoch = %s",
            (resolved, account, epoch),
        ).rowcount
        > 0
    )


def version(conn: psycopg.Connection, account: str) -> int | None:
    row = conn.execute("SELECT version FROM credentials WHERE account = %s", (account,)).fetchone()
    return None if row is None else int(row[0])


def holders(conn: psycopg.Connection) -> dict[str, str]:
    """Accounts whose lease is held right now, and by whom (for ``state migrate``)."""
    return dict(
        conn.execute("SELECT account, holder FROM refresh_leases WHERE until > clock_timestamp()")
    )
