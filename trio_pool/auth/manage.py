"""``trio-pool users`` and ``trio-pool password``: the directory in state.db, from the shell.

They write the db the running proxy reads; it picks the change up within a few seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from trio_pool import clock
from trio_pool.auth.directory import Directory, describe_user
from trio_pool.config import Config
from trio_pool.state.store import StateStore
from trio_pool.usage.queries import user_usage

T = TypeVar("T")
DAY_S = 86400.0


def run_with_directory(config: Config, action: Callable[[Directory], Awaitable[T]]) -> T:
    async def main() -> T:
        if config.state_url is not None:
            # Several hosts: the directory lives in PostgreSQL (backend.py).
            from trio_pool.auth import pg_users as users
            from trio_pool.state.pg.store import PgStore

            shared = await PgStore.open(config.state_url, config.state)
            try:
                directory = Directory(shared, friend_code=config.friend_code, queries=users)
                await directory.start()
                return await action(directory)
            finally:
                await shared.aclose()
        store = await StateStore.open(config.data_dir)
        try:
            directory = Directory(store, friend_code=config.friend_code)
            await directory.start()
            return await action(directory)
        finally:
            await store.aclose()

    return trio.run(main)


async def user_documents(directory: Directory) -> list[dict[str, Any]]:
    usage: dict[str, tuple[int, int]] = {}
    if directory.store is not None:  # state.db, or every host's rows in PostgreSQL
        usage = await directory.store.run(user_usage, clock.now() - DAY_S)
    documents = []
    for user in sorted(directory.users.values(), key=lambda u: u.created_at):
        requests, tokens = usage.get(user.name, (0, 0))
        documents.append(
            {**describe_user(directory, user), "requests_24h": requests, "tokens_24h": tokens}
        )
    return documents


def render_users(documents: list[dict[str, Any]]) -> str:
    if not documents:
        return "no users: the pool is in local mode (add one with: trio-pool users add NAME)"
    header = ("USER", "KEYS", "LIMITS", "REQUESTS 24H", "TOKENS 24H")
    rows = [header]
    for d in documents:
        live = [k for k in d["keys"] if not k["revoked"]]
        keys = ", ".join(f"{k['id']} ({k['prefix']})" for k in live) or "none"
        limits = d["limits"]
        shown = [
            f"{limits['rpm']}/min" if limits["rpm"] else "",
            f"{limits['streams']} at once" if limits["streams"] else "",
            f"{limits['share_pct']:g}% of quota" if limits["share_pct"] else "",
        ]
        rows.append(
            (
                d["name"],
                keys,
                ", ".join(s for s in shown if s) or "none",
                str(d["requests_24h"]),
                str(d["tokens_24h"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )
