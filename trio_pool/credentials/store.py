"""Pool files on disk: reading ``pool/<provider>/*.json`` and writing one back atomically.

Synchronous file I/O on purpose: the shell calls these through ``trio.to_thread``. A bad
file never stops the scan: it is reported with its path and reason, and the rest load.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import stat
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from trio_pool.errors import CredentialsError
from trio_pool.providers.base import PROVIDERS, ProviderName

MAX_FILE_BYTES = 1024 * 1024
STALE_TEMP_S = 60.0  # a temp file this old has no live writer
FILE_MODE = 0o600


@attrs.frozen
class PoolDocument:
    """One readable pool file: its JSON document and what the scan noticed about it."""

    provider: ProviderName
    name: str  # "claude/work": provider and file stem
    path: Path
    document: dict[str, Any] = attrs.field(repr=False)
    mtime_ns: int
    size: int
    # Readable by group or others: still loaded, and the shell warns naming the file.
    insecure_mode: bool = False


@attrs.frozen
class PoolFileError:
    path: Path
    reason: str  # never a secret: the file's content is not quoted


@attrs.frozen
class PoolScan:
    documents: tuple[PoolDocument, ...] = ()
    errors: tuple[PoolFileError, ...] = ()


def read_document(path: Path) -> tuple[dict[str, Any], os.stat_result]:
    """The JSON object in ``path`` and its stat; raises CredentialsError with a reason."""
    try:
        with path.open("rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CredentialsError(f"{path}: not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise CredentialsError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        document = json.loads(raw)
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        # The position only: the message must not quote the file's content.
        raise CredentialsError(
            f"{path}: not valid JSON (line {exc.lineno} column {exc.colno})"
        ) from None
    except ValueError:
        raise CredentialsError(f"{path}: not valid JSON") from None
    except RecursionError:
        raise CredentialsError(f"{path}: JSON nested too deeply") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{path}: expected a JSON object at the top level")
    return document, info


def scan_pool(pool_dir: Path) -> PoolScan:
    """Every ``pool_dir/<provider>/*.json`` file, read; a missing directory is an empty pool.

    Hidden files (``.name.json``, our own temporary files) are not accounts.
    """
    documents: list[PoolDocument] = []
    errors: list[PoolFileError] = []
    for provider in PROVIDERS:
        directory = pool_dir / provider
        try:
            paths = sorted(directory.glob("*.json"))
        except OSError as exc:
            errors.append(PoolFileError(directory, f"cannot list ({exc.strerror or exc})"))
            continue
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                document, info = read_document(path)
            except CredentialsError as exc:
                errors.append(PoolFileError(path, str(exc).removeprefix(f"{path}: ")))
                continue
            documents.append(
                PoolDocument(
                    provider=provider,
                    name=f"{provider}/{path.stem}",
                    path=path,
                    document=document,
                    mtime_ns=info.st_mtime_ns,
                    size=info.st_size,
                    insecure_mode=bool(info.st_mode & (stat.S_IRGRP | stat.S_IROTH)),
                )
            )
    return PoolScan(tuple(documents), tuple(errors))


def dump_document(document: Mapping[str, Any]) -> bytes:
    """Pretty JSON, two-space indent, the way the CLIs write their credential files."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def write_document_atomic(path: Path, document: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``document``: temp file in the same directory, fsync, rename.

    Readers see the old file or the new one, never a mix; the file ends up mode 0600.
    """
    _remove_stale_temps(path)
    try:
        replace_file(path, dump_document(document), mode=FILE_MODE)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot write ({exc.strerror or exc})") from None


def replace_file(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` atomically: a temp file in the same directory, written,
    fsynced and renamed over it, then the directory fsynced. Readers see the old file or the
    new one, never a mix; a failed write leaves no temp file. Raises OSError."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temp = Path(temp_name)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_directory(path.parent)


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files that a writer killed mid-write left behind (kill -9, power loss).

    Only ones older than STALE_TEMP_S: a younger one may belong to a writer still running.
    """
    cutoff = time.time() - STALE_TEMP_S
    for temp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        with contextlib.suppress(OSError):
            if temp.stat().st_mtime < cutoff:
                temp.unlink()


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not every platform lets a directory be opened.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
