"""The pool's accounts as loaded from ``pool/<provider>/*.json``, kept in step with the files.

A scan compares each file's (mtime, size, inode) with what we loaded; added, changed and
removed files update the routing pool. A malformed file is named with its reason and skipped
while the other accounts keep serving. ``serve_reload`` rescans every second, so an edit takes
effect within two seconds without a restart.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import trio

from trio_pool.accounts.pool import Pool
from trio_pool.config import Config
from trio_pool.errors import CredentialsError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS, Credentials, ProviderName

log = logging.getLogger(__name__)

RELOAD_INTERVAL_S = 1.0
MAX_FILE_BYTES = 1024 * 1024

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
    project: str | None = None  # Gemini project learned from loadCodeAssist
    refresh_retry_at: float = 0.0  # after a transient refresh failure: not before this
    refresh_failures: int = 0
    # Multi-host: another host is refreshing; its token is adopted when it lands, and until
    # then this host keeps using the current one without asking again (no waiting).
    refresh_elsewhere_until: float = 0.0
    insecure_mode: bool = False  # the file is readable by group or others


def _signature(st: os.stat_result) -> Signature:
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def read_account_file(path: Path, provider: ProviderName) -> tuple[dict[str, Any], Credentials]:
    """Read and parse one pool file; raises CredentialsError with a reason (never a secret)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CredentialsError(f"cannot read: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise CredentialsError("larger than 1 MiB; not a credential file")
    try:
        document = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CredentialsError(
            f"not valid JSON ({exc.__class__.__name__} at position {getattr(exc, 'pos', '?')})"
        ) from None
    if not isinstance(document, dict):
        raise CredentialsError("expected a JSON object at the top level")
    return document, PROVIDER_REGISTRY[provider].parse_credentials(document)


@attrs.frozen
class Found:
    """One pool file as ``collect`` saw it; ``result`` is None when it did not change."""

    path: Path
    provider: ProviderName
    signature: Signature
    insecure: bool
    result: tuple[dict[str, Any], Credentials] | CredentialsError | None = attrs.field(repr=False)


def collect(pool_dir: Path, known: Mapping[str, Signature]) -> dict[str, Found]:
    """Stat every pool file and read the ones whose signature changed (runs in a thread)."""
    found: dict[str, Found] = {}
    for provider in PROVIDERS:
        try:
            entries = sorted((pool_dir / provider).glob("*.json"))
        except OSError:
            continue
        for path in entries:
            try:
                st = path.stat()
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            name = f"{provider}/{path.stem}"
            sig = _signature(st)
            result: tuple[dict[str, Any], Credentials] | CredentialsError | None = None
            if known.get(name) != sig:
                try:
                    result = read_account_file(path, provider)
                except CredentialsError as exc:
                    result = exc
            insecure = bool(st.st_mode & (stat.S_IRWXG | stat.S_IRWXO))
            found[name] = Found(path, provider, sig, insecure, result)
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
            current.document = document
            current.credentials = credentials
            current.signature = item.signature
            current.insecure_mode = item.insecure
        self.pool.set_account(
            name,
            item.provider,
            priority=settings.priority,
            disabled=settings.disabled,
            plan=credentials.plan,
        )
        return True

    def update_from_write(
        self, account: PoolAccount, document: Mapping[str, Any], credentials: Credentials
    ) -> None:
        """After we wrote refreshed tokens ourselves: adopt them without a reload round-trip."""
        account.document = dict(document)
        account.credentials = credentials
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
            found = await trio.to_thread.run_sync(
                collect, self.config.pool_dir, self.known_signatures()
            )
            self.apply(found)
