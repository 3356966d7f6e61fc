"""The users, keys and admin password as this process knows them (the trio shell).

Lookups (``authenticate``, ``session_caller``) are dict reads on the request path, no
await. Changes go to state.db first, then memory is re-read from it; every RELOAD_S the
directory re-reads the db, so ``trio-pool users add`` in another process (or another proxy
on the same data dir) takes effect without a restart. Key use times are written in batches.

Reads are numbered: a snapshot is adopted only if no later-started read was adopted
already, so a periodic reload that read the db just before a sign-up cannot put the
memory back to "no such user" after the sign-up's own read (the store runs reads and
writes one at a time, in order).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import attrs
import trio

from trio_pool import clock
from trio_pool.auth import db, marker
from trio_pool.auth.keys import key_hash, key_prefix, new_key, new_key_id, valid_name
from trio_pool.auth.limits import UsageLimiter
from trio_pool.auth.model import Caller, PoolKey, User, UserLimits
from trio_pool.auth.password import hash_password, password_problem, verify_password
from trio_pool.auth.session import Session, verify
from trio_pool.auth.throttle import AttemptThrottle, SignupRate
from trio_pool.errors import AuthError, StateError
from trio_pool.state.store import StateStore

if TYPE_CHECKING:
    from trio_pool.state.pg.store import PgStore

log = logging.getLogger(__name__)

RELOAD_S = 2.0
PASSWORD_CHECKS = 2
SIGNUPS_PER_HOUR = 20


class PasswordBusy(AuthError):
    """Too many password checks at once (answered 503 with Retry-After)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 503)


class Directory:
    def __init__(
        self,
        store: StateStore | PgStore | None,
        *,
        friend_code: str | None = None,
        signups_per_hour: int = SIGNUPS_PER_HOUR,
        data_dir: Path | None = None,
        queries: ModuleType = db,
    ) -> None:
        self.store = store
        # auth/db.py on state.db; auth/pg_users.py (the same functions) in multi-host mode.
        self.db = queries
        # Where state.db and the users marker live (None: no db at all, e.g. in tests). In
        # multi-host mode there is no marker: the users are in PostgreSQL, and a host that
        # cannot read them at start refuses to start (backend.py).
        if data_dir is None and isinstance(store, StateStore):
            data_dir = store.path.parent
        self.data_dir = data_dir if queries is db else None
        self._own_store = False  # opened here after a failed start: closed here
        self._secret_loaded = False
        self.friend_code = friend_code
        self.users: dict[str, User] = {}
        self.keys: dict[str, PoolKey] = {}  # by id
        self._by_hash: dict[str, PoolKey] = {}
        self.password_hash: str | None = None
        # Without a db: sessions last as long as the process.
        self.secret = secrets.token_bytes(32)
        self.limiter = UsageLimiter()
        # One throttle per secret (a friend-code guesser must not lock the admin out); only
        # sign-up has the global lock. See auth/throttle.py.
        self.join_throttle = AttemptThrottle()
        self.password_throttle = AttemptThrottle(total=None)
        self.key_throttle = AttemptThrottle(total=None)
        self.signups = SignupRate(signups_per_hour)
        # scrypt takes 32 MiB and ~0.1 s per check: a few at once, the rest refused (503).
        self._password_checks = trio.CapacityLimiter(PASSWORD_CHECKS)
        self._used: dict[str, float] = {}  # key id -> last use, not yet written
        # False while state.db cannot say whether users exist: then every request is refused
        # (fail closed), never served as a local pool.
        self.ready = True
        self.admin_epoch = 0
        self._reads = 0  # reads started
        self._adopted = 0  # the newest read adopted

    @property
    def shared(self) -> bool:
        """Shared mode: callers need pool keys (a friend code is set, or users exist, or
        whether users exist cannot be known now: never open by accident)."""
        return self.friend_code is not None or bool(self.users) or not self.ready

    # -- loading --------------------------------------------------------------------------

    async def load(self) -> None:
        if self.store is None:
            return
        self._reads += 1
        ticket = self._reads
        snapshot = await self.store.run(self.db.load)
        if ticket > self._adopted:
            self._adopted = ticket
            self._adopt(snapshot)
            await self._check_marker()
        if self.db is not db:
            # Multi-host: the sign-up rate counts every host's sign-ups, not just ours.
            # Ours recorded from ``read_at`` on are kept (counted twice at worst, briefly).
            read_at = clock.now()
            since = read_at - self.signups.window_s
            times = await self.store.run(self.db.recent_signups, since)
            self.signups.adopt(times, read_at=read_at)

    async def record_signup(self, now: float) -> None:
        """A friend signed up: counted against ``[join] signups_per_hour`` (on every host)."""
        self.signups.record(now)
        if self.db is not db and self.store is not None:
            await self.store.run(self.db.record_signup, now)

    async def _check_marker(self) -> None:
        """Keep data_dir/.users-exist in step; no users but the marker: not ready (M4)."""
        if self.data_dir is None:
            self._set_ready(True, "")
            return
        if self.users:
            if not await marker.had_users(self.data_dir):
                await marker.remember(self.data_dir)
            self._set_ready(True, "")
        elif await marker.had_users(self.data_dir):
            self._set_ready(
                False,
                f"state.db has no users, but {marker.marker_path(self.data_dir)} says the pool "
                "had some: restore the db, or delete that file to run as a local pool",
            )
        else:
            self._set_ready(True, "")

    def _set_ready(self, ready: bool, reason: str) -> None:
        if ready and not self.ready:
            log.warning("auth.available users=%d (serving again)", len(self.users))
        elif not ready and self.ready:
            log.error("auth.unavailable reason=%s (refusing every request until then)", reason)
        self.ready = ready

    async def start(self) -> None:
        """The first load, and the session secret (kept in the db across restarts).

        A db that exists but cannot be read (or a lost one that had users) leaves the
        directory not ready: every request is refused while ``serve`` retries.
        """
        if self.store is None:
            if self.data_dir is not None and await marker.db_or_marker_exists(self.data_dir):
                self._set_ready(False, f"{self.data_dir / marker.STATE_FILE} cannot be opened")
            return
        try:
            await self._load_secret()
            await self.load()
        except StateError as exc:
            self._set_ready(False, str(exc))

    async def _load_secret(self) -> None:
        if self.store is not None and not self._secret_loaded:
            self.secret = await self.store.run(self.db.session_secret)
            self._secret_loaded = True

    async def serve(self) -> None:
        """Reload and write key use times until cancelled (then a last write). While not
        ready, reopen state.db (if it could not be opened) and retry."""
        try:
            while True:
                await trio.sleep(RELOAD_S)
                try:
                    if self.store is None and not self.ready and self.data_dir is not None:
                        self.store = await StateStore.open(self.data_dir)
                        self._own_store = True
                    await self._load_secret()
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
                if self._own_store and self.store is not None:
                    await self.store.aclose()

    def _adopt(self, snapshot: db.Snapshot) -> None:
        for name in self.users.keys() - snapshot.users.keys():
            self.limiter.forget(name)
        self.users = snapshot.users
        self.keys = {k.id: k for k in snapshot.keys}
        self._by_hash = {k.hash: k for k in snapshot.keys if not k.revoked}
        self.password_hash = snapshot.password
        self.admin_epoch = snapshot.admin_epoch

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
        """The cookie's caller while its session is current (see auth/session.py)."""
        session = verify(self.secret, cookie, now)
        if session is None:
            return None
        caller = session.caller
        if caller.role == "admin":
            return caller if session.epoch == self.admin_epoch else None
        user = self.users.get(caller.name or "")
        if user is None or user.uid != session.uid or user.epoch != session.epoch:
            return None  # removed (or re-created), signed out, or a key of theirs revoked
        return caller

    def session_for(self, caller: Caller) -> Session:
        """What a new cookie for ``caller`` carries: the current epoch and user id."""
        if caller.role == "user":
            user = self.users[caller.name or ""]
            return Session(caller, user.epoch, user.uid)
        return Session(caller, self.admin_epoch)

    async def end_sessions(self, caller: Caller) -> None:
        """Sign ``caller`` out everywhere: every cookie of theirs stops working."""
        if self.store is None:
            if caller.role == "admin":
                self.admin_epoch += 1
            return
        await self.store.run(self.db.end_sessions, caller.name if caller.role == "user" else None)
        await self.load()
        log.info("auth.sessions.ended role=%s user=%s", caller.role, caller.name)

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
        user = User(name, clock.now(), limits, uid=secrets.token_hex(8))
        await store.run(self.db.add_user, user)
        _, key = await self.issue_key(name)  # re-reads: the user and the key are in memory
        log.info("auth.user.added user=%s", name)
        return self.users.get(name, user), key

    async def remove_user(self, name: str) -> None:
        await self._need_store().run(self.db.remove_user, name)
        if self.data_dir is not None and not (await self._need_store().run(self.db.load)).users:
            await marker.forget(self.data_dir)  # the last one: local mode again, on purpose
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
        await self.load()
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
        store = self._need_store()
        await store.run(self.db.set_password, hashed)  # and every admin session ends
        await self.load()
        log.info("auth.password.set")

    @property
    def password_checks_running(self) -> int:
        return int(self._password_checks.borrowed_tokens)

    async def check_password(
        self, password: str, counted: Callable[[], None] = lambda: None
    ) -> bool:
        """Is ``password`` the admin's? scrypt (~0.1 s, 32 MiB) runs off the event loop.

        At most PASSWORD_CHECKS run at once; another raises PasswordBusy at once instead of
        queueing (memory stays bounded under a burst). ``counted`` is called once a check
        is certain to run and before it is awaited, so that the caller's throttle has
        counted the attempt before the answer can come back: a burst of guesses is
        throttled as it arrives, not after every one of them was evaluated.
        """
        stored = self.password_hash
        if stored is None:
            return False
        try:
            self._password_checks.acquire_nowait()
        except trio.WouldBlock:
            raise PasswordBusy("other password checks are running; retry in a moment") from None
        try:
            counted()
            return await trio.to_thread.run_sync(verify_password, password, stored)
        finally:
            self._password_checks.release()


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
