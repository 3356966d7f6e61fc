"""Users, pool keys and settings in state.db (blocking; run on the StateStore's worker).

Keys are stored as sha256 only (``keys.key_hash``); the admin password as scrypt. The
session secret is made on first use and kept, so sessions survive a restart.
"""

from __future__ import annotations

import secrets
import sqlite3

import attrs

from trio_pool.auth.model import MAX_KEYS_PER_USER, PoolKey, User, UserLimits
from trio_pool.errors import AuthError
from trio_pool.state.db import transaction

PASSWORD = "admin_password"
SESSION_SECRET = "session_secret"


ADMIN_EPOCH = "admin_session_epoch"


@attrs.frozen
class Snapshot:
    """The directory as one read transaction saw it."""

    users: dict[str, User]
    keys: list[PoolKey]
    password: str | None = attrs.field(repr=False)
    admin_epoch: int


def load(conn: sqlite3.Connection) -> Snapshot:
    """Users, keys, the password hash and the admin's session epoch, read consistently."""
    with transaction(conn, write=False):
        users = {
            name: User(name, created, UserLimits(rpm, streams, share), uid=uid, epoch=epoch)
            for name, created, rpm, streams, share, uid, epoch in conn.execute(
                "SELECT name, created_at, rpm, streams, share_pct, uid, session_epoch FROM users"
            )
        }
        keys = [
            PoolKey(*row)
            for row in conn.execute(
                "SELECT id, user, hash, prefix, created_at, last_used_at, revoked_at FROM pool_keys"
            )
        ]
        password = get_setting(conn, PASSWORD)
        epoch = get_setting(conn, ADMIN_EPOCH)
    return Snapshot(users, keys, password, int(epoch) if epoch and epoch.isdigit() else 0)


def add_user(conn: sqlite3.Connection, user: User) -> None:
    with transaction(conn):
        if conn.execute("SELECT 1 FROM users WHERE name = ?", (user.name,)).fetchone():
            raise AuthError(f"a user named {user.name!r} already exists", 409)
        limits = user.limits
        conn.execute(
            "INSERT INTO users (name, role, created_at, rpm, streams, share_pct, uid) "
            "VALUES (?, 'user', ?, ?, ?, ?, ?)",
            (user.name, user.created_at, limits.rpm, limits.streams, limits.share_pct, user.uid),
        )


def end_sessions(conn: sqlite3.Connection, user: str | None) -> None:
    """Every session of ``user`` (None: of the admin) ends: its epoch moves on."""
    with transaction(conn):
        _bump(conn, user)


def _bump(conn: sqlite3.Connection, user: str | None) -> None:
    if user is not None:
        conn.execute("UPDATE users SET session_epoch = session_epoch + 1 WHERE name = ?", (user,))
        return
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?, '1') ON CONFLICT (key) DO UPDATE "
        "SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)",
        (ADMIN_EPOCH,),
    )


def set_password(conn: sqlite3.Connection, hashed: str) -> None:
    """A new admin password; every admin session signed in before it ends."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (PASSWORD, hashed),
        )
        _bump(conn, None)


def remove_user(conn: sqlite3.Connection, name: str) -> None:
    with transaction(conn):
        if not conn.execute("DELETE FROM users WHERE name = ?", (name,)).rowcount:
            raise AuthError(f"no user named {name!r}", 404)
        conn.execute("DELETE FROM pool_keys WHERE user = ?", (name,))


def set_limits(conn: sqlite3.Connection, name: str, limits: UserLimits) -> None:
    with transaction(conn):
        changed = conn.execute(
            "UPDATE users SET rpm = ?, streams = ?, share_pct = ? WHERE name = ?",
            (limits.rpm, limits.streams, limits.share_pct, name),
        ).rowcount
        if not changed:
            raise AuthError(f"no user named {name!r}", 404)


def add_key(conn: sqlite3.Connection, key: PoolKey, max_keys: int = MAX_KEYS_PER_USER) -> None:
    with transaction(conn):
        if not conn.execute("SELECT 1 FROM users WHERE name = ?", (key.user,)).fetchone():
            raise AuthError(f"no user named {key.user!r}", 404)
        (live,) = conn.execute(
            "SELECT COUNT(*) FROM pool_keys WHERE user = ? AND revoked_at IS NULL", (key.user,)
        ).fetchone()
        if live >= max_keys:
            raise AuthError(
                f"{key.user} already has {live} keys (the most one user may hold); "
                "revoke one first",
                409,
            )
        conn.execute(
            "INSERT INTO pool_keys (id, user, hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
            (key.id, key.user, key.hash, key.prefix, key.created_at),
        )


def revoke_key(conn: sqlite3.Connection, key_id: str, now: float) -> None:
    with transaction(conn):
        changed = conn.execute(
            "UPDATE pool_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?",
            (now, key_id),
        ).rowcount
        if not changed:
            raise AuthError(f"no key with id {key_id!r}", 404)
        # Whoever signed in with that key (a thief, say) loses the session too.
        conn.execute(
            "UPDATE users SET session_epoch = session_epoch + 1 "
            "WHERE name = (SELECT user FROM pool_keys WHERE id = ?)",
            (key_id,),
        )


def touch_keys(conn: sqlite3.Connection, used: dict[str, float]) -> None:
    with transaction(conn):
        conn.executemany(
            "UPDATE pool_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?) WHERE id = ?",
            [(at, key_id) for key_id, at in used.items()],
        )


def get_setting(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_setting(conn: sqlite3.Connection, key: str, value: str) -> None:
    with transaction(conn):
        conn.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


def session_secret(conn: sqlite3.Connection) -> bytes:
    """The cookie-signing secret, made once (INSERT OR IGNORE: two processes agree)."""
    with transaction(conn):
        conn.execute(
            "INSERT OR IGNORE INTO settings (key, value) VALUES (?, ?)",
            (SESSION_SECRET, secrets.token_hex(32)),
        )
    return bytes.fromhex(str(get_setting(conn, SESSION_SECRET)))
