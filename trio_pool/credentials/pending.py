"""Refreshed tokens that could not be written to their pool file yet (a full disk, a
read-only pool directory): a 0600 copy under ``data_dir/pending-tokens/``.

Codex and Claude refresh tokens are single-use, so once the token endpoint has answered, the
new tokens are the only working ones. If the pool file cannot take them, this copy is what a
restart (or another process's refresh, under the host lock) uses instead of the spent token
still in the file. The copy names the spent refresh token only by a hash, ``replaces``: it
applies while the pool file still holds that token and is obsolete once the file changed
(the user logged in again). It is removed as soon as the pool file holds the new tokens.

Multi-host mode keeps its pending write-backs here too (``fenced.py``): there the copy also
names ``base_version``, the stored credential version the rotation started from (the
compare-and-set it is waiting to make), and the document is sealed with the state key
(``sealing.py``), as it would be in PostgreSQL. A copy without ``base_version`` is a
single-host one and the other way round; neither mode touches the other's copies.

Synchronous file I/O: call these through ``trio.to_thread``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

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


class Sealer(Protocol):
    """What seals a copy (``state.pg.sealing.Keyring``): AES-GCM bound to a name and number."""

    def seal(self, plaintext: bytes, account: str, version: int) -> tuple[bytes, str]: ...

    def open(self, blob: bytes, account: str, version: int) -> bytes: ...


@attrs.frozen
class Pending:
    name: str
    replaces: str  # fingerprint of the spent refresh token the pool file may still hold
    document: dict[str, Any] = attrs.field(repr=False)
    base_version: int | None = None  # multi-host: the credential version it replaces


def _sealed_name(name: str) -> str:
    # Not the account name itself: a copy can never be replayed as a credentials row.
    return f"pending:{name}"


def save_pending(
    data_dir: Path,
    name: str,
    document: dict[str, Any],
    spent: str | None,
    *,
    base_version: int | None = None,
    sealer: Sealer | None = None,
) -> Path:
    """Keep ``document`` (new tokens for ``name``) until its pool file (or, multi-host, the
    shared store at ``base_version``) can take it; sealed when a ``sealer`` is given."""
    path = pending_path(data_dir, name)
    record: dict[str, Any] = {"version": VERSION, "account": name, "replaces": fingerprint(spent)}
    if base_version is not None:
        record["base_version"] = base_version
    if sealer is None:
        record["document"] = document
    else:
        plain = json.dumps(document, separators=(",", ":")).encode()
        blob, _key_id = sealer.seal(plain, _sealed_name(name), base_version or 0)
        record["sealed"] = base64.b64encode(blob).decode("ascii")
    try:
        for directory in (data_dir / PENDING_DIR, path.parent):
            directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            os.chmod(directory, DIR_MODE)
        replace_file(path, dump_document(record), mode=FILE_MODE)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def load_pending(data_dir: Path, name: str, *, sealer: Sealer | None = None) -> Pending | None:
    """The copy kept for ``name``, or None (also for an unreadable one: it cannot help).

    A sealed copy that does not open with ``sealer`` raises CredentialsError (naming the
    file, never its content): the caller says so, and the copy stays for a host with the key.
    """
    path = pending_path(data_dir, name)
    try:
        raw = path.read_bytes()
        record = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict):
        return None
    replaces, base = record.get("replaces"), record.get("base_version")
    if not isinstance(replaces, str) or not (base is None or type(base) is int):
        return None
    document = record.get("document")
    sealed = record.get("sealed")
    if isinstance(sealed, str):
        if sealer is None:
            return None
        try:
            blob = base64.b64decode(sealed, validate=True)
        except (binascii.Error, ValueError):
            return None
        try:
            document = json.loads(sealer.open(blob, _sealed_name(name), base or 0))
        except CredentialsError as exc:
            raise CredentialsError(f"{path}: {exc}") from None
    if not isinstance(document, dict):
        return None
    return Pending(name, replaces, document, base)


def is_shared_copy(data_dir: Path, name: str) -> bool:
    """Is the copy kept for ``name`` a multi-host one (single-host recovery leaves it)?"""
    try:
        record = json.loads(pending_path(data_dir, name).read_bytes())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(record, dict) and (
        record.get("base_version") is not None or "sealed" in record
    )


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
