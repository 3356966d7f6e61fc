"""The values shared mode talks about: callers, users, their keys and limits."""

from __future__ import annotations

from typing import Literal

import attrs

Role = Literal["admin", "user", "anonymous"]
MAX_LIMIT = 10**9  # the largest rpm / streams (SQLite INTEGER, and no real limit is larger)
MAX_KEYS_PER_USER = 20  # live (not revoked) keys of one user


@attrs.frozen
class Caller:
    """Who is asking: the dashboard's and the API's view of the request's credentials."""

    role: Role
    name: str | None = None  # the user's name; None for the local-mode admin and anonymous

    @property
    def can_view(self) -> bool:
        return self.role != "anonymous"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


ANONYMOUS = Caller("anonymous")
LOCAL_ADMIN = Caller("admin")


@attrs.frozen
class UserLimits:
    """Optional per-user limits; None means no limit."""

    rpm: int | None = None  # requests started per rolling minute
    streams: int | None = None  # requests in flight at once
    share_pct: float | None = None  # of the pool's capacity in each quota window

    def problems(self) -> list[str]:
        found = []
        if self.rpm is not None and not 1 <= self.rpm <= MAX_LIMIT:
            found.append(f"rpm: must be from 1 to {MAX_LIMIT} (or null for no limit)")
        if self.streams is not None and not 1 <= self.streams <= MAX_LIMIT:
            found.append(f"streams: must be from 1 to {MAX_LIMIT} (or null for no limit)")
        if self.share_pct is not None and not 0 < self.share_pct <= 100:
            found.append("share_pct: must be more than 0 and at most 100 (or null)")
        return found


@attrs.frozen
class PoolKey:
    """A key as stored: its sha256, never the key itself."""

    id: str
    user: str
    hash: str = attrs.field(repr=False)
    prefix: str  # "tp-ab12…" for recognising it in lists
    created_at: float
    last_used_at: float | None = None
    revoked_at: float | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@attrs.frozen
class User:
    name: str
    created_at: float
    limits: UserLimits = UserLimits()
    role: Literal["user"] = "user"
    # A random id (a user removed and re-created under the same name is another user) and
    # the session epoch (bumped to end every session of the user); see auth/session.py.
    uid: str = ""
    epoch: int = 0
