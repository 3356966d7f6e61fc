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
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS, Credentials, ProviderName

MAX_FILE_BYTES = 1024 * 1024
STALE_TEMP_S = 60.0  # a temp file this old has no live writer
FILE_MODE = 0o600


def is_insecure(mode: int) -> bool:
    """The one definition: a credential file that group or others may read or write."""
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


@attrs.frozen
class PoolDocument:
    """One readable pool file: its JSON document and what the scan noticed about it."""

    provider: ProviderName
    name: str  # "claude/work": provider and file stem
    path: Path
    document: dict[str, Any] = attrs.field(repr=False)
    mtime_ns: int
    size: int
    # Accessible by group or others: still loaded, and the shell warns naming the file.
    insecure_mode: bool = False
    symlink: bool = False


@attrs.frozen
class PoolFileError:
    path: Path
    reason: str  # never a secret: the file's content is not quoted


@attrs.frozen
class PoolScan:
    documents: tuple[PoolDocument, ...] = ()
    errors: tuple[PoolFileError, ...] = ()


@attrs.frozen
class PoolEntry:
    """One account file as listed (not read yet): ``stat`` is of the file a link points to."""

    provider: ProviderName
    name: str
    path: Path
    stat: os.stat_result
    symlink: bool

    @property
    def insecure(self) -> bool:
        return is_insecure(self.stat.st_mode)


def list_pool_files(pool_dir: Path) -> tuple[list[PoolEntry], list[PoolFileError]]:
    """The account files under ``pool_dir/<provider>/``: the one pool-directory reader that
    the proxy, the CLI and the dashboard share.

    ``NAME.json`` files only; hidden ones (``.name.json``, our own temporary files) are not
    accounts. A name that is not a regular file (a directory, a FIFO, a dangling link) is
    reported, never opened. A missing directory is an empty pool.
    """
    entries: list[PoolEntry] = []
    errors: list[PoolFileError] = []
    for provider in PROVIDERS:
        directory = pool_dir / provider
        try:
            names = sorted(os.listdir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            errors.append(PoolFileError(directory, f"cannot list ({exc.strerror or exc})"))
            continue
        for file_name in names:
            if file_name.startswith(".") or not file_name.endswith(".json"):
                continue
            path = directory / file_name
            try:
                link = os.lstat(path)
                info = os.stat(path)  # follows a symlink: what a read would open
            except OSError as exc:
                errors.append(PoolFileError(path, f"cannot read ({exc.strerror or exc})"))
                continue
            if not stat.S_ISREG(info.st_mode):
                errors.append(PoolFileError(path, "not a regular file"))
                continue
            name = f"{provider}/{path.stem}"
            entries.append(PoolEntry(provider, name, path, info, stat.S_ISLNK(link.st_mode)))
    return entries, errors


def read_document(path: Path) -> tuple[dict[str, Any], os.stat_result]:
    """The JSON object in ``path`` and its stat; raises CredentialsError with a reason.

    Opened without blocking and checked to be a regular file before any read: a FIFO (or
    a device) in the pool directory must not hang the reader.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
        with open(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise CredentialsError(f"{path}: not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise CredentialsError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CredentialsError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise CredentialsError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    return _parse(path, raw), info


def _parse(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except UnicodeDecodeError:
        raise CredentialsError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        # The position only: the message must not quote the file's content.
        raise CredentialsError(
            f"{path}: not valid JSON (line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise CredentialsError(f"{path}: JSON nested too deeply") from None
    except Exception as exc:
        # Whatever else the parser raises, this file is skipped and named: one bad file
        # must never stop the others from loading (nor the process).
        raise CredentialsError(f"{path}: not valid JSON ({type(exc).__name__})") from None
    if not isinstance(document, dict):
        raise CredentialsError(f"{path}: expected a JSON object at the top level")
    return document


def read_account(
    path: Path, provider: ProviderName
) -> tuple[dict[str, Any], Credentials, os.stat_result]:
    """Read one pool file and parse its credentials; any failure is a CredentialsError."""
    document, info = read_document(path)
    try:
        credentials = PROVIDER_REGISTRY[provider].parse_credentials(document)
    except CredentialsError:
        raise
    except Exception as exc:
        # A well-formed JSON document of an unexpected shape (or a deep one) must not
        # escape as a crash from the provider's parser.
        raise CredentialsError(f"unusable credentials ({type(exc).__name__})") from None
    return document, credentials, info


def scan_pool(pool_dir: Path) -> PoolScan:
    """Every account file of ``pool_dir``, read (see ``list_pool_files``)."""
    entries, errors = list_pool_files(pool_dir)
    documents: list[PoolDocument] = []
    for entry in entries:
        try:
            document, info = read_document(entry.path)
        except CredentialsError as exc:
            errors.append(PoolFileError(entry.path, str(exc).removeprefix(f"{entry.path}: ")))
            continue
        documents.append(
            PoolDocument(
                provider=entry.provider,
                name=entry.name,
                path=entry.path,
                document=document,
                mtime_ns=info.st_mtime_ns,
                size=info.st_size,
                insecure_mode=is_insecure(info.st_mode),
                symlink=entry.symlink,
            )
        )
    return PoolScan(tuple(documents), tuple(errors))


def dump_document(document: Mapping[str, Any]) -> bytes:
    """Pretty JSON, two-space indent, the way the CLIs write their credential files."""
    return (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()


def write_document_atomic(path: Path, document: Mapping[str, Any]) -> None:
    """Replace ``path`` with ``document``: temp file in the same directory, fsync, rename.

    Readers see the old file or the new one, never a mix; the file ends up mode 0600. A
    symlink is written through: the file it points to is replaced and the link stays, so
    whoever else reads that file sees the new (single-use) refresh token, not a spent one.
    """
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    _remove_stale_temps(target)
    try:
        replace_file(target, dump_document(document), mode=FILE_MODE)
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
