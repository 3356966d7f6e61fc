"""Users, pool keys and settings on PostgreSQL: ``auth/db.py``'s functions, same names.

So a login cookie works on every host, the session secret lives here too: the first host
to start makes it (``ON CONFLICT DO NOTHING``) and every host reads the same one. Session
epochs (each user's, and the admin's setting) live here as well, so a sign-out, a revoked
key or a new password on one host ends those cookies on every host at its next reload.
"""

from __future__ import annotations

import secrets

import psycopg

from trio_pool.auth.db import ADMIN_EPOCH, PASSWORD, SESSION_SECRET, Snapshot
from trio_pool.auth.model import MAX_KEYS_PER_USER, PoolKey, User, UserLimits
from trio_pool.errors import AuthError

__all__ = ["ADMIN_EPOCH", "PASSWORD", "SESSION_SECRET", "Snapshot"]


def load(conn: psycopg.Connection) -> Snapshot:
    """Users, keys, the password hash and the admin's session epoch, read consistently."""
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        users = {
            name: User(name, created, UserLimits(rpm, streams, share), uid=uid, epoch=int(epoch))
            for name, created, rpm, streams, share, uid, epoch in conn.execute(
                "SELECT name, created_at, rpm, streams, share_pct, uid, session_epoch FROM users"
            )
        }
        keys = [
            PoolKey(*row)
            for row in conn.execute(
                'SELECT id, "user", hash, prefix, created_at, last_used_at, revoked_at '
                "FROM pool_keys"
            )
        ]
        password = get_setting(conn, PASSWORD)
        epoch = get_setting(conn, ADMIN_EPOCH)
    return Snapshot(users, keys, password, int(epoch) if epoch and epoch.isdigit() else 0)


def add_user(conn: psycopg.Connection, user: User) -> None:
    limits = user.limits
    with conn.transaction():
        added = conn.execute(
            "INSERT INTO users (name, role, created_at, rpm, streams, share_pct, uid) "
            "VALUES (%s, 'user', %s, %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (user.name, user.created_at, limits.rpm, limits.streams, limits.share_pct, user.uid),
        ).rowcount
        if not added:
            raise AuthError(f"a user named {user.name!r} already exists", 409)


def end_sessions(conn: psycopg.Connection, user: str | None) -> None:
    """Every session of ``user`` (None: of the admin) ends: its epoch moves on."""
    with conn.transaction():
        _bump(conn, user)


def _bump(conn: psycopg.Connection, user: str | None) -> None:
    if user is not None:
        conn.execute("UPDATE users SET session_epoch = session_epoch + 1 WHERE name = %s", (user,))
        return
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (%s, '1') ON CONFLICT (key) DO UPDATE "
        "SET value = (CAST(settings.value AS bigint) + 1)::text",
        (ADMIN_EPOCH,),
    )


def set_password(conn: psycopg.Connection, hashed: str) -> None:
    """A new admin password; every admin session signed in before it ends."""
    with conn.transaction():
        set_setting(conn, PASSWORD, hashed)
        _bump(conn, None)


def remove_user(conn: psycopg.Connection, name: str) -> None:
    with conn.transaction():
        if not conn.execute("DELETE FROM users WHERE name = %s", (name,)).rowcount:
            raise AuthError(f"no user named {name!r}", 404)
        conn.execute('DELETE FROM pool_keys WHERE "user" = %s', (name,))


def set_limits(conn: psycopg.Connection, name: str, limits: UserLimits) -> None:
    changed = conn.execute(
        "UPDATE users SET rpm = %s, streams = %s, share_pct = %s WHERE name = %s",
        (limits.rpm, limits.streams, limits.share_pct, name),
    ).rowcount
    if not changed:
        raise AuthError(f"no user named {name!r}", 404)


def add_key(conn: psycopg.Connection, key: PoolKey, max_keys: int = MAX_KEYS_PER_USER) -> None:
    with conn.transaction():
        # FOR UPDATE: two hosts issuing keys to one user at once cannot both pass the cap.
        if not conn.execute(
            "SELECT 1 FROM users WHERE name = %s FOR UPDATE", (key.user,)
        ).fetchone():
            raise AuthError(f"no user named {key.user!r}", 404)
        row = conn.execute(
            'SELECT COUNT(*) FROM pool_keys WHERE "user" = %s AND revoked_at IS NULL',
            (key.user,),
        ).fetchone()
        live = int(row[0]) if row else 0
        if live >= max_keys:
            raise AuthError(
                f"{key.user} already has {live} keys (the most one user may hold); "
                "revoke one first",
                409,
            )
        conn.execute(
            'INSERT INTO pool_keys (id, "user", hash, prefix, created_at) '
            "VALUES (%s, %s, %s, %s, %s)",
            (key.id, key.user, key.hash, key.prefix, key.created_at),
        )


def revoke_key(conn: psycopg.Connection, key_id: str, now: float) -> None:
    with conn.transaction():
        changed = conn.execute(
            "UPDATE pool_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s",
            (now, key_id),
        ).rowcount
        if not changed:
            raise AuthError(f"no key with id {key_id!r}", 404)
        # Whoever signed in with that key (a thief, say) loses the session too.
        conn.execute(
            "UPDATE users SET session_epoch = session_epoch + 1 "
            'WHERE name = (SELECT "user" FROM pool_keys WHERE id = %s)',
            (key_id,),
        )


def touch_keys(conn: psycopg.Connection, used: dict[str, float]) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE pool_keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), %s) "
            "WHERE id = %s",
            [(at, key_id) for key_id, at in used.items()],
        )


SIGNUPS_KEPT_S = 7200.0  # well past the rolling hour the rate looks at


def record_signup(conn: psycopg.Connection, at: float) -> None:
    """One friend sign-up, seen by every host's sign-up rate (``[join] signups_per_hour``)."""
    with conn.transaction():
        conn.execute("DELETE FROM signups WHERE at < %s", (at - SIGNUPS_KEPT_S,))
        conn.execute("INSERT INTO signups (at) VALUES (%s)", (at,))


def recent_signups(conn: psycopg.Connection, since: float) -> list[float]:
    return [float(at) for (at,) in conn.execute(
        "SELECT at FROM signups WHERE at >= %s ORDER BY at", (since,)
    )]  # fmt: skip


def get_setting(conn: psycopg.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_setting(conn: psycopg.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def session_secret(conn: psycopg.Connection) -> bytes:
    """The cookie-signing secret every host shares, made by the first one."""
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (%s, %s) ON CONFLICT (key) DO NOTHING",
        (SESSION_SECRET, secrets.token_hex(32)),
    )
    return bytes.fromhex(str(get_setting(conn, SESSION_SECRET)))
