"""``accounts use NAME``: put a pool account into the CLI's own credential file, for people
who prefer switching logins to proxying. The CLI's previous file is backed up first.
Synchronous file I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from trio_pool.config import Config
from trio_pool.credentials.store import read_document, write_document_atomic
from trio_pool.errors import CredentialsError, LoginError
from trio_pool.files import backup_file
from trio_pool.login.importer import credential_path
from trio_pool.login.pooldir import find_account


@attrs.frozen
class Switched:
    name: str
    target: Path
    backup: Path | None
    notes: tuple[str, ...] = ()


def use_account(
    config: Config,
    name: str,
    *,
    env: Mapping[str, str],
    home: Path,
    platform: str,
    now: float | None = None,
) -> Switched:
    row = find_account(config, name)
    if row.problem is not None:
        raise LoginError(f"{row.name} cannot be used: {row.problem}")
    try:
        document, _info = read_document(row.path)
    except CredentialsError as exc:
        raise LoginError(str(exc)) from None
    target = credential_path(row.provider, env, home)
    new: dict[str, Any] = dict(document)
    notes = []
    if row.provider == "claude":
        # Keep the CLI's other secure-storage keys (MCP servers' tokens); swap the login.
        try:
            current, _info = read_document(target)
        except CredentialsError:
            current = {}
        new = {**current, "claudeAiOauth": document["claudeAiOauth"]}
        if platform == "darwin":
            notes.append(
                "on macOS Claude Code reads its login from the keychain, not this file; "
                "run `/login` in Claude Code instead, or remove the keychain entry "
                "'Claude Code-credentials' so it falls back to the file"
            )
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    backup = backup_file(target, now)
    write_document_atomic(target, new)
    if row.provider in ("codex", "claude"):
        notes.append(
            f"{row.name} is now used directly by the CLI and by the pool: its refresh token "
            f"is single-use, so disable it in the pool (`trio-pool accounts disable {row.name}`) "
            "or expect one side to be logged out"
        )
    return Switched(row.name, target, backup, tuple(notes))
