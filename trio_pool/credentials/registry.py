"""The pool's accounts as loaded from ``pool/<provider>/*.json``, kept in step with the files.

A scan compares each file's (mtime, size, inode) with what we loaded; added, changed and
removed files update the routing pool. A malformed file is named with its reason and skipped
while the other accounts keep serving. ``serve_reload`` rescans every second, so an edit takes
effect within two seconds without a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from trio_pool.accounts.pool import Pool
from trio_pool.config import Config
from trio_pool.credentials.store import list_pool_files, read_account
from trio_pool.errors import CredentialsError
from trio_pool.providers.base import PROVIDERS, Credentials, ProviderName

log = logging.getLogger(__name__)

RELOAD_INTERVAL_S = 1.0

Signature = tuple[int, int, int]  # (mtime_ns, size, inode)


@attrs.define(eq=False)
class PoolAccount:
    """One account of the pool: its file, the parsed credentials and what we learned about it."""

    name: str  # "claude/work"
    provider: ProviderName
    path: Path
    document: dict[str, Any] = attrs.field(repr=False)
    credentials: Credentials
    signature: Signature
    # Serialises refreshes (and Gemini project look-ups) of this account inside this process;
    # the lock in state.db serialises them across processes.
    lock: trio.Lock = attrs.field(factory=trio.Lock, repr=False)
    # Gemini Code Assist set-up (credentials.gemini_setup), redone when the file changes.
    project: str | None = None  # the project loadCodeAssist / onboardUser gave
    setup_done: bool = False
    setup_retry_at: float = 0.0  # after a failed look-up: not before this
    setup_failures: int = 0
    refresh_retry_at: float = 0.0  # after a transient refresh failure: not before this
    refresh_failures: int = 0
    # Multi-host: another host is refreshing; its token is adopted when it lands, and until
    # then this host keeps using the current one without asking again (no waiting).
    refresh_elsewhere_until: float = 0.0
    insecure_mode: bool = False  # the file is accessible by group or others
    symlink: bool = False  # the pool file is a link: refreshed tokens go to its target
    # Refreshed tokens the pool file could not take yet: we serve with them from memory
    # (the file still holds ``spent_refresh``, already used) and retry the write.
    unsaved: bool = False
    spent_refresh: str | None = attrs.field(default=None, repr=False)
    write_failures: int = 0
    write_retry_at: float = 0.0


def _signature(st: os.stat_result) -> Signature:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_account_file(path: Path, provider: ProviderName) -> tuple[dict[str, Any], Credentials]:
    """Read and parse one pool file; raises CredentialsError with a reason (never a secret)."""
    document, credentials, _info = read_account(path, provider)
    return document, credentials


@attrs.frozen
class Found:
    """One pool file as ``collect`` saw it; ``result`` is None when it did not change."""

    path: Path
    provider: ProviderName
    signature: Signature
    insecure: bool
    result: tuple[dict[str, Any], Credentials] | CredentialsError | None = attrs.field(repr=False)
    symlink: bool = False


def collect(pool_dir: Path, known: Mapping[str, Signature]) -> dict[str, Found]:
    """List the pool files (the one reader in ``store``) and read the ones whose signature
    changed (runs in a thread). A file that cannot be used is a CredentialsError result."""
    found: dict[str, Found] = {}
    entries, errors = list_pool_files(pool_dir)
    for error in errors:
        provider = error.path.parent.name
        if provider not in PROVIDERS or error.path.suffix != ".json":
            continue  # a whole provider directory that cannot be listed
        try:
            sig = _signature(os.lstat(error.path))
        except OSError:
            sig = (0, 0, 0)
        name = f"{provider}/{error.path.stem}"
        problem = CredentialsError(error.reason)
        found[name] = Found(error.path, provider, sig, False, problem)
    for entry in entries:
        sig = _signature(entry.stat)
        result: tuple[dict[str, Any], Credentials] | CredentialsError | None = None
        if known.get(entry.name) != sig:
            try:
                document, credentials, _info = read_account(entry.path, entry.provider)
                result = (document, credentials)
            except CredentialsError as exc:
                result = CredentialsError(str(exc).removeprefix(f"{entry.path}: "))
        found[entry.name] = Found(
            entry.path, entry.provider, sig, entry.insecure, result, entry.symlink
        )
    return found


class AccountRegistry:
    def __init__(self, config: Config, pool: Pool) -> None:
        self.config = config
        self.pool = pool
        self.accounts: dict[str, PoolAccount] = {}
        self.problems: dict[str, str] = {}  # account name -> why its file was skipped
        self._seen_problems: dict[str, Signature] = {}

    def get(self, name: str) -> PoolAccount | None:
        return self.accounts.get(name)

    def scan(self) -> bool:
        """Bring the accounts in step with the pool directory; True if anything changed."""
        return self.apply(collect(self.config.pool_dir, self.known_signatures()))

    def known_signatures(self) -> dict[str, Signature]:
        known = {name: account.signature for name, account in self.accounts.items()}
        known.update(self._seen_problems)
        return known

    def apply(self, found: dict[str, Found]) -> bool:
        """Apply what ``collect`` read (in the trio thread: the pool is not thread-safe)."""
        changed = False
        for name in list(self.accounts):
            if name not in found:
                log.info("pool.account.removed account=%s", name)
                del self.accounts[name]
                self.pool.remove_account(name)
                changed = True
        for name in list(self.problems):
            if name not in found:
                del self.problems[name]
                self._seen_problems.pop(name, None)
        for name, item in found.items():
            if item.result is not None:
                changed |= self._load(name, item)
        return changed

    def load_one(self, name: str, item: Found) -> bool:
        """Apply one account from elsewhere (multi-host mode: the shared store)."""
        return self._load(name, item)

    def drop(self, name: str) -> None:
        if self.accounts.pop(name, None) is not None:
            log.info("pool.account.removed account=%s", name)
            self.pool.remove_account(name)

    def _load(self, name: str, item: Found) -> bool:
        current = self.accounts.get(name)
        result = item.result
        assert result is not None
        if isinstance(result, CredentialsError):
            if current is not None:
                # A half-written or broken edit: keep serving with what we had, say why.
                log.warning(
                    "pool.account.unreadable account=%s file=%s reason=%s "
                    "(keeping the previous credentials)",
                    name,
                    item.path,
                    result,
                )
                current.signature = item.signature
            else:
                log.warning(
                    "pool.account.skipped account=%s file=%s reason=%s", name, item.path, result
                )
            self.problems[name] = str(result)
            self._seen_problems[name] = item.signature
            return current is not None
        document, credentials = result
        self.problems.pop(name, None)
        self._seen_problems.pop(name, None)
        if item.insecure and (current is None or not current.insecure_mode):
            log.warning(
                "pool.account.file_readable_by_others account=%s file=%s hint='chmod 600 %s'",
                name,
                item.path,
                item.path,
            )
        if item.symlink and (current is None or not current.symlink):
            # Decided: written through (the link stays, its target gets the new tokens).
            log.warning(
                "pool.account.symlink account=%s file=%s target=%s (refreshed tokens are "
                "written to the target; a login used elsewhere too will be spent twice)",
                name,
                item.path,
                os.path.realpath(item.path),
            )
        if (
            current is not None
            and current.unsaved
            and credentials.refresh_token == current.spent_refresh
        ):
            # The file changed (touched, chmod) but still holds the refresh token we have
            # already spent: the tokens in memory are the only working ones, keep them.
            current.signature = item.signature
            current.insecure_mode = item.insecure
            current.symlink = item.symlink
            return False
        settings = self.config.account_settings(name)
        if current is None:
            log.info("pool.account.added account=%s", name)
            self.accounts[name] = PoolAccount(
                name,
                item.provider,
                item.path,
                document,
                credentials,
                item.signature,
                insecure_mode=item.insecure,
                symlink=item.symlink,
            )
        else:
            old = current.credentials
            if (credentials.refresh_token, credentials.access_token) != (
                old.refresh_token,
                old.access_token,
            ):
                # New tokens (a re-login, or another process refreshed): a needs-re-login
                # verdict about the old ones no longer holds.
                self.pool.clear_needs_relogin(name)
                current.refresh_failures = 0
                current.refresh_retry_at = 0.0
            if current.unsaved:
                log.info("credentials.write_back.superseded account=%s", name)
            current.unsaved = False
            current.spent_refresh = None
            # Any edit of the file (a new login, a project added) may be what the user did
            # about a needs-action verdict; whoever set it checks again and sets it anew.
            self.pool.clear_action(name)
            current.project = None
            current.setup_done = False
            current.setup_retry_at = 0.0
            current.setup_failures = 0
            current.document = document
            current.credentials = credentials
            current.signature = item.signature
            current.insecure_mode = item.insecure
            current.symlink = item.symlink
        self.pool.set_account(
            name,
            item.provider,
            priority=settings.priority,
            disabled=settings.disabled,
            plan=credentials.plan,
        )
        return True

    def adopt(
        self, account: PoolAccount, document: Mapping[str, Any], credentials: Credentials
    ) -> None:
        """New credentials in memory (written to the file or not yet)."""
        account.document = dict(document)
        account.credentials = credentials

    def update_from_write(
        self, account: PoolAccount, document: Mapping[str, Any], credentials: Credentials
    ) -> None:
        """After we wrote refreshed tokens ourselves: adopt them without a reload round-trip."""
        self.adopt(account, document, credentials)
        account.unsaved = False
        account.spent_refresh = None
        account.write_failures = 0
        try:
            account.signature = _signature(account.path.stat())
        except OSError:
            pass

    async def serve_reload(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Rescan the pool directory every second, forever."""
        task_status.started()
        while True:
            await trio.sleep(RELOAD_INTERVAL_S)
            try:
                found = await trio.to_thread.run_sync(
                    collect, self.config.pool_dir, self.known_signatures()
                )
                self.apply(found)
            except Exception:
                # One bad scan (a file system error, a bug) must not end the reloads, nor
                # the app: log it and scan again at the next tick.
                log.exception("pool.reload.failed pool_dir=%s", self.config.pool_dir)
