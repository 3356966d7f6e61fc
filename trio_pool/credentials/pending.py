"""Refreshed tokens that could not be written to their pool file yet (a full disk, a
read-only pool directory): a 0600 copy under ``data_dir/pending-tokens/``.

Codex and Claude refresh tokens are single-use, so once the token endpoint has answered, the
new tokens are the only working ones. If the pool file cannot take them, this copy is what a
restart (or another process's refresh, under the host lock) uses instead of the spent token
still in the file. The copy names the spent refresh token only by a hash, ``replaces``: it
applies while the pool file still holds that token and is obsolete once the file changed
(the user logged in again). It is removed as soon as the pool file holds the new tokens.

Synchronous file I/O: call these through ``trio.to_thread``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import attrs

from trio_pool.credentials.store import FILE_MODE, dump_document, replace_file
from trio_pool.errors import CredentialsError

PENDING_DIR = "pending-tokens"
DIR_MODE = 0o700
VERSION = 1


def fingerprint(token: str | None) -> str:
    """A refresh token as the copy names it: enough to match, useless to an attacker."""
    return hashlib.sha256((token or "").encode()).hexdigest()[:32]


def pending_path(data_dir: Path, name: str) -> Path:
    provider, _, stem = name.partition("/")
    return data_dir / PENDING_DIR / provider / f"{stem}.json"


@attrs.frozen
class Pending:
    name: str
    replaces: str  # fingerprint of the spent refresh token the pool file may still hold
    document: dict[str, Any] = attrs.field(repr=False)


def save_pending(data_dir: Path, name: str, document: dict[str, Any], spent: str | None) -> Path:
    """Keep ``document`` (new tokens for ``name``) until its pool file can take it."""
    path = pending_path(data_dir, name)
    record = {"version": VERSION, "account": name, "replaces": fingerprint(spent)}
    record["document"] = document
    try:
        for directory in (data_dir / PENDING_DIR, path.parent):
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(directory, DIR_MODE)
        replace_file(path, dump_document(record), mode=FILE_MODE)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def load_pending(data_dir: Path, name: str) -> Pending | None:
    """The copy kept for ``name``, or None (also for an unreadable one: it cannot help)."""
    try:
        raw = pending_path(data_dir, name).read_bytes()
        record = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    document, replaces = record.get("document"), record.get("replaces")
    if not isinstance(document, dict) or not isinstance(replaces, str):
        return None
    return Pending(name, replaces, document)


def list_pending(data_dir: Path) -> list[str]:
    """The account names that have a copy waiting."""
    names = []
    root = data_dir / PENDING_DIR
    with contextlib.suppress(OSError):
        for provider_dir in sorted(root.iterdir()):
            if not provider_dir.is_dir():
                continue
            for path in sorted(provider_dir.glob("*.json")):
                if not path.name.startswith("."):
                    names.append(f"{provider_dir.name}/{path.stem}")
    return names


def remove_pending(data_dir: Path, name: str) -> bool:
    """Delete the copy of ``name``; True when there was one."""
    try:
        pending_path(data_dir, name).unlink()
    except FileNotFoundError:
        return False
    except OSError:
        return False
    return True
