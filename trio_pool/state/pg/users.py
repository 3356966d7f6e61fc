"""Users, pool keys and settings on PostgreSQL: ``auth/db.py``'s functions, same names.

So a login cookie works on every host, the session secret lives here too: the first host
to start makes it (``ON CONFLICT DO NOTHING``) and every host reads the same one.
"""

from __future__ import annotations

import secrets

import psycopg

from trio_pool.auth.db import PASSWORD, SESSION_SECRET
from trio_pool.auth.model import PoolKey, User, UserLimits
from trio_pool.errors import AuthError

__all__ = ["PASSWORD", "SESSION_SECRET"]


def load(conn: psycopg.Connection) -> tuple[dict[str, User], list[PoolKey]]:
    with conn.transaction():
        users = {
            name: User(name, created, UserLimits(rpm, streams, share))
            for name, created, rpm, streams, share in conn.execute(
                "SELECT name, created_at, rpm, streams, share_pct FROM users"
            )
        }
        keys = [
            PoolKey(*row)
            for row in conn.execute(
                'SELECT id, "user", hash, prefix, created_at, last_used_at, revoked_at '
                "FROM pool_keys"
            )
        ]
    return users, keys


def add_user(conn: psycopg.Connection, user: User) -> None:
    limits = user.limits
    with conn.transaction():
        added = conn.execute(
            "INSERT INTO users (name, role, created_at, rpm, streams, share_pct) "
            "VALUES (%s, 'user', %s, %s, %s, %s) ON CONFLICT (name) DO NOTHING",
            (user.name, user.created_at, limits.rpm, limits.streams, limits.share_pct),
        ).rowcount
        if not added:
            raise AuthError(f"a user named {user.name!r} already exists", 409)


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


def add_key(conn: psycopg.Connection, key: PoolKey) -> None:
    with conn.transaction():
        if not conn.execute("SELECT 1 FROM users WHERE name = %s", (key.user,)).fetchone():
            raise AuthError(f"no user named {key.user!r}", 404)
        conn.execute(
            'INSERT INTO pool_keys (id, "user", hash, prefix, created_at) '
            "VALUES (%s, %s, %s, %s, %s)",
            (key.id, key.user, key.hash, key.prefix, key.created_at),
        )


def revoke_key(conn: psycopg.Connection, key_id: str, now: float) -> None:
    changed = conn.execute(
        "UPDATE pool_keys SET revoked_at = COALESCE(revoked_at, %s) WHERE id = %s",
        (now, key_id),
    ).rowcount
    if not changed:
        raise AuthError(f"no key with id {key_id!r}", 404)


def touch_keys(conn: psycopg.Connection, used: dict[str, float]) -> None:
    with conn.transaction(), conn.cursor() as cursor:
        cursor.executemany(
            "UPDATE pool_keys SET last_used_at = GREATEST(COALESCE(last_used_at, 0), %s) "
            "WHERE id = %s",
            [(at, key_id) for key_id, at in used.items()],
        )


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
