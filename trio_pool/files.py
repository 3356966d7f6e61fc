"""Timestamped backups beside a file before trio-pool changes it, and atomic text writes.

``auth.json`` -> ``auth.json.trio-pool-20260101T120000.bak`` (mode 0600: the file may hold
tokens). Synchronous file I/O.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from trio_pool.credentials.store import FILE_MODE, replace_file

SUFFIX = ".bak"


def _pattern(path: Path) -> str:
    return f"{path.name}.trio-pool-*{SUFFIX}"


def backup_file(path: Path, now: float | None = None) -> Path | None:
    """Copy ``path`` to a new timestamped backup; None when there is no file to keep."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(time.time() if now is None else now))
    target = path.with_name(f"{path.name}.trio-pool-{stamp}{SUFFIX}")
    counter = 1
    while target.exists():
        counter += 1
        target = path.with_name(f"{path.name}.trio-pool-{stamp}-{counter}{SUFFIX}")
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return target


def backups_of(path: Path) -> list[Path]:
    """Every backup of ``path``, oldest first."""
    return sorted(path.parent.glob(_pattern(path)), key=lambda p: (p.stat().st_mtime_ns, p.name))


def latest_backup(path: Path) -> Path | None:
    found = backups_of(path)
    return found[-1] if found else None


def write_text_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` through a temporary file with ``mode``; by default its current mode
    (new files: 0600)."""
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o777
        except FileNotFoundError:
            mode = FILE_MODE
    replace_file(path, text.encode(), mode=mode)
