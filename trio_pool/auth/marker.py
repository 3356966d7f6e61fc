"""``data_dir/.users-exist``: the pool had users, so it is shared (fail closed, M4).

Shared mode follows from the users in state.db. If that db cannot be read (corrupt, locked
by another process, deleted), "no users could be read" must never turn a shared pool into
an open local one. The marker remembers that users existed; together with "state.db exists
but cannot be read" it makes the directory refuse every request until the users are known.

Written whenever a load finds users; removed only when a user removal through trio-pool
leaves none (an emptied or replaced db with the marker still present stays refused until
the admin restores the db or deletes the marker, as the log says).
"""

from __future__ import annotations

import os
from pathlib import Path

import trio

MARKER = ".users-exist"
STATE_FILE = "state.db"
TEXT = (
    "trio-pool: this pool has users (shared mode). If data/state.db is lost, trio-pool refuses "
    "every request rather than serve as an open local pool; restore the db, or delete this "
    "file to run as a local pool.\n"
)


def marker_path(data_dir: Path) -> Path:
    return data_dir / MARKER


async def had_users(data_dir: Path) -> bool:
    return await trio.Path(marker_path(data_dir)).exists()


async def db_or_marker_exists(data_dir: Path) -> bool:
    """Something says users may exist: the marker, or a state.db we could not read."""
    return await had_users(data_dir) or await trio.Path(data_dir / STATE_FILE).exists()


def _write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(TEXT)


async def remember(data_dir: Path) -> None:
    await trio.to_thread.run_sync(_write, marker_path(data_dir))


async def forget(data_dir: Path) -> None:
    await trio.Path(marker_path(data_dir)).unlink(missing_ok=True)
