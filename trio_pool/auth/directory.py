"""The users, keys and admin password as this process knows them (the trio shell).

Lookups (``authenticate``, ``session_caller``) are dict reads on the request path, no
await. Changes go to state.db first, then into memory; every RELOAD_S the directory
re-reads the db, so ``trio-pool users add`` in another process (or another proxy on the
same data dir) takes effect without a restart. Key use times are written in batches.
"""

from __future__ import annotations

import logging
import secrets
from types import ModuleType
from typing import TYPE_CHECKING

import attrs
import trio

from trio_pool import clock
from trio_pool.auth import db
from trio_pool.auth.keys import key_hash, key_prefix, new_key, new_key_id, valid_name
from trio_pool.auth.limits import UsageLimiter
from trio_pool.auth.model import Caller, PoolKey, User, UserLimits
from trio_pool.auth.password import hash_password, password_problem, verify_password
from trio_pool.auth.session import verify
from trio_pool.auth.throttle import AttemptThrottle
from trio_pool.errors import AuthError, StateError
from trio_pool.state.store import StateStore

if TYPE_CHECKING:
    from trio_pool.state.pg.store import PgStore

log = logging.getLogger(__name__)

RELOAD_S = 2.0


class Directory:
    def __init__(
        self,
        store: StateStore | PgStore | None,
        *,
        friend_code: str | None = None,
        queries: ModuleType = db,
    ) -> None:
        self.store = store
        # auth/db.py on state.db; state/pg/users.py (same functions) in multi-host mode.
        self.db = queries
        self.friend_code = friend_code
        self.users: dict[str, User] = {}
        self.keys: dict[str, PoolKey] = {}  # by id
        self._by_hash: dict[str, PoolKey] = {}
        self.password_hash: str | None = None
        # Without a db: sessions last as long as the process.
        self.secret = secrets.token_bytes(32)
        self.limiter = UsageLimiter()
        self.throttle = AttemptThrottle()
        self._used: dict[str, float] = {}  # key id -> last use, not yet written

    @property
    def shared(self) -> bool:
        """Shared mode: callers need pool keys (a friend code is set, or users exist)."""
        return self.friend_code is not None or bool(self.users)

    # -- loading --------------------------------------------------------------------------

    async def load(self) -> None:
        if self.store is None:
            return
        users, keys = await self.store.run(self.db.load)
        password = await self.store.run(self.db.get_setting, db.PASSWORD)
        self._adopt(users, keys, password)

    async def start(self) -> None:
        """The first load, and the session secret (kept in the db across restarts)."""
        if self.store is not None:
            self.secret = await self.store.run(self.db.session_secret)
        await self.load()

    async def serve(self) -> None:
        """Reload and write key use times until cancelled (then a last write)."""
        try:
            while True:
                await trio.sleep(RELOAD_S)
                try:
                    await self._write_used()
                    await self.load()
                except StateError as exc:
                    log.warning("auth.reload.failed reason=%s", exc)
        finally:
            with trio.CancelScope(shield=True):
                try:
                    await self._write_used()
                except StateError as exc:
                    log.warning("auth.key_use.lost reason=%s", exc)

    def _adopt(self, users: dict[str, User], keys: list[PoolKey], password: str | None) -> None:
        for name in self.users.keys() - users.keys():
            self.limiter.forget(name)
        self.users = users
        self.keys = {k.id: k for k in keys}
        self._by_hash = {k.hash: k for k in keys if not k.revoked}
        self.password_hash = password

    async def _write_used(self) -> None:
        used, self._used = self._used, {}
        if used and self.store is not None:
            await self.store.run(self.db.touch_keys, used)

    # -- the request path (no await) ------------------------------------------------------

    def authenticate(self, key: str, now: float) -> User | None:
        """The user a pool key belongs to; None for an unknown or revoked key."""
        found = self._by_hash.get(key_hash(key))
        if found is None or found.user not in self.users:
            return None
        self._used[found.id] = now
        return self.users[found.user]

    def session_caller(self, cookie: str, now: float) -> Caller | None:
        caller = verify(self.secret, cookie, now)
        if caller is None:
            return None
        if caller.role == "user" and caller.name not in self.users:
            return None  # the user was removed: the session ends with it
        return caller

    def keys_of(self, user: str) -> list[PoolKey]:
        return sorted((k for k in self.keys.values() if k.user == user), key=lambda k: k.created_at)

    # -- changes (db first, then memory) --------------------------------------------------

    def _need_store(self) -> StateStore | PgStore:
        if self.store is None:
            raise AuthError("users need data/state.db, which is unavailable (see the log)", 503)
        return self.store

    async def add_user(self, name: str, limits: UserLimits | None = None) -> tuple[User, str]:
        """A new user and their first key (the only time the key is seen whole)."""
        name = name.strip()
        if not valid_name(name):
            raise AuthError(
                "a name is 1 to 40 letters, digits, spaces or . _ @ - (starting with a letter "
                "or digit)"
            )
        limits = limits or UserLimits()
        problems = limits.problems()
        if problems:
            raise AuthError("; ".join(problems))
        store = self._need_store()
        user = User(name, clock.now(), limits)
        await store.run(self.db.add_user, user)
        self.users = {**self.users, name: user}
        _, key = await self.issue_key(name)
        log.info("auth.user.added user=%s", name)
        return user, key

    async def remove_user(self, name: str) -> None:
        await self._need_store().run(self.db.remove_user, name)
        await self.load()
        log.info("auth.user.removed user=%s", name)

    async def set_limits(self, name: str, limits: UserLimits) -> User:
        problems = limits.problems()
        if problems:
            raise AuthError("; ".join(problems))
        await self._need_store().run(self.db.set_limits, name, limits)
        await self.load()
        log.info("auth.user.limits user=%s limits=%s", name, limits)
        return self.users[name]

    async def issue_key(self, user: str) -> tuple[PoolKey, str]:
        key = new_key()
        record = PoolKey(new_key_id(), user, key_hash(key), key_prefix(key), clock.now())
        await self._need_store().run(self.db.add_key, record)
        self.keys[record.id] = record
        self._by_hash[record.hash] = record
        log.info("auth.key.issued user=%s key_id=%s", user, record.id)
        return record, key

    async def revoke_key(self, key_id: str) -> PoolKey:
        await self._need_store().run(self.db.revoke_key, key_id, clock.now())
        await self.load()
        log.info("auth.key.revoked key_id=%s", key_id)
        return self.keys[key_id]

    async def set_password(self, password: str) -> None:
        problem = password_problem(password)
        if problem is not None:
            raise AuthError(problem)
        hashed = await trio.to_thread.run_sync(hash_password, password)
        await self._need_store().run(self.db.set_setting, db.PASSWORD, hashed)
        self.password_hash = hashed
        log.info("auth.password.set")

    async def check_password(self, password: str) -> bool:
        """scrypt takes ~0.1 s of CPU: off the event loop."""
        stored = self.password_hash
        if stored is None:
            return False
        return await trio.to_thread.run_sync(verify_password, password, stored)


def describe_user(directory: Directory, user: User) -> dict[str, object]:
    """A user as the API shows it (no key, only ids and prefixes)."""
    return {
        "name": user.name,
        "role": user.role,
        "created_at": user.created_at,
        "limits": attrs.asdict(user.limits),
        "keys": [
            {
                "id": k.id,
                "prefix": k.prefix,
                "created_at": k.created_at,
                "last_used_at": k.last_used_at,
                "revoked": k.revoked,
            }
            for k in directory.keys_of(user.name)
        ],
    }
