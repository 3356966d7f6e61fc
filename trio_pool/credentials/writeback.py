"""Writing refreshed tokens back to their pool file, and what happens when that fails.

A refresh has already spent the old (single-use) refresh token when we get here, so the new
tokens are adopted in memory first and the account keeps serving with them whatever the disk
says. A failed write (a full disk, a read-only pool directory) is logged naming the account,
a 0600 copy is kept under ``data_dir`` (``pending.py``) and the write is retried with backoff
under the same locks as a refresh, after re-reading the file: if someone else changed it in
the meantime (a new login, another process's refresh), their tokens win.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import trio

from trio_pool import clock
from trio_pool.config import Config
from trio_pool.credentials.pending import (
    fingerprint,
    is_shared_copy,
    list_pending,
    load_pending,
    remove_pending,
    save_pending,
)
from trio_pool.credentials.registry import AccountRegistry, PoolAccount
from trio_pool.credentials.store import read_account, write_document_atomic
from trio_pool.errors import CredentialsError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import Credentials, ProviderName

log = logging.getLogger(__name__)

WRITE_RETRY_FIRST_S = 1.0
WRITE_RETRY_MAX_S = 60.0
WRITE_CHECK_EVERY_S = 0.5

# write(path, document): raises CredentialsError. Tests pass a writer that fails on demand.
Writer = Callable[[Path, Mapping[str, Any]], None]


class WriteBack:
    def __init__(
        self, config: Config, registry: AccountRegistry, *, write: Writer = write_document_atomic
    ) -> None:
        self.config = config
        self.registry = registry
        self.write = write

    async def store(
        self, account: PoolAccount, document: dict[str, Any], spent: str | None
    ) -> bool:
        """Write ``document`` (already adopted in memory) to the account's file; True when
        written. On failure: a pending copy, an error in the log, a retry later."""
        try:
            await trio.to_thread.run_sync(self.write, account.path, document)
        except CredentialsError as exc:
            await self._failed(account, document, spent, exc)
            return False
        self.registry.update_from_write(account, document, account.credentials)
        await trio.to_thread.run_sync(remove_pending, self.config.data_dir, account.name)
        return True

    async def _failed(
        self,
        account: PoolAccount,
        document: dict[str, Any],
        spent: str | None,
        exc: CredentialsError,
    ) -> None:
        first = not account.unsaved
        account.unsaved = True
        account.spent_refresh = spent
        account.write_failures += 1
        delay = min(WRITE_RETRY_MAX_S, WRITE_RETRY_FIRST_S * 2 ** (account.write_failures - 1))
        account.write_retry_at = clock.now() + delay
        try:
            copy = await trio.to_thread.run_sync(
                save_pending, self.config.data_dir, account.name, document, spent
            )
        except CredentialsError as copy_exc:
            where = f"nowhere but memory ({copy_exc})"
        else:
            where = f"a copy in {copy}"
        # The reason names the file and the OS error, never the tokens.
        log_at = log.error if first or account.write_failures % 10 == 0 else log.warning
        log_at(
            "credentials.write_back.failed account=%s reason=%s retry_in_s=%.0f "
            "(serving with the new tokens from memory; kept in %s)",
            account.name,
            exc,
            delay,
            where,
        )

    async def retry(self, account: PoolAccount) -> None:
        """Under the account's locks: write the tokens held in memory, unless another
        process or a new login has meanwhile put newer ones on disk (those are adopted)."""
        try:
            await self.sync_from_host(account)
        except CredentialsError as exc:
            account.write_failures += 1
            account.write_retry_at = clock.now() + WRITE_RETRY_MAX_S
            log.warning("credentials.write_back.unreadable account=%s reason=%s", account.name, exc)
            return
        if not account.unsaved:
            log.info("credentials.write_back.superseded account=%s", account.name)
            await trio.to_thread.run_sync(remove_pending, self.config.data_dir, account.name)
            return
        failures = account.write_failures
        if await self.store(account, account.document, account.spent_refresh):
            log.info(
                "credentials.write_back.ok account=%s after_failures=%d", account.name, failures
            )

    async def sync_from_host(self, account: PoolAccount) -> bool:
        """Adopt the newest tokens on this host for ``account``: its pool file, or a pending
        copy that applies to it, or (when both hold the token we spent) the ones we hold in
        memory. True when the access token changed. Raises CredentialsError."""
        spent = account.spent_refresh if account.unsaved else None
        newest = await trio.to_thread.run_sync(
            newest_on_host,
            account.path,
            account.provider,
            self.config.data_dir,
            account.name,
            spent,
        )
        if newest is None:
            return False
        document, credentials, still_spent = newest
        changed = credentials.access_token != account.credentials.access_token
        if still_spent is None:
            self.registry.update_from_write(account, document, credentials)
        else:
            self.registry.adopt(account, document, credentials)
            account.unsaved = True
            account.spent_refresh = still_spent
            if changed:
                account.write_retry_at = 0.0
        return changed

    def due(self, now: float) -> list[PoolAccount]:
        return [
            account
            for account in self.registry.accounts.values()
            if account.unsaved and now >= account.write_retry_at
        ]

    async def recover(self) -> None:
        """At start-up: adopt the copies that earlier runs could not write to their files."""
        data_dir = self.config.data_dir
        for name in await trio.to_thread.run_sync(list_pending, data_dir):
            account = self.registry.get(name)
            if account is None:
                continue  # the file is gone (or unreadable): keep the copy for later
            if await trio.to_thread.run_sync(is_shared_copy, data_dir, name):
                continue  # a multi-host write-back (fenced.py): for that mode to land
            try:
                await self.sync_from_host(account)
            except CredentialsError:
                continue
            if account.unsaved:
                log.warning(
                    "credentials.pending.adopted account=%s (tokens an earlier run could not "
                    "write; writing them to %s now)",
                    name,
                    account.path,
                )
            else:
                # Already in the file, or obsolete (the file holds a newer login).
                await trio.to_thread.run_sync(remove_pending, data_dir, name)


Newest = tuple[dict[str, Any], Credentials, str | None]


def newest_on_host(
    path: Path, provider: ProviderName, data_dir: Path, name: str, spent: str | None
) -> Newest | None:
    """(document, credentials, spent refresh token the file still holds or None) of the
    newest tokens on disk; None when the caller's own unsaved tokens (which replaced
    ``spent``) are the newest. Synchronous: run it in a thread."""
    document, on_disk, _info = read_account(path, provider)
    pending = load_pending(data_dir, name)
    if pending is not None and pending.base_version is None:
        credentials = applies(pending.document, pending.replaces, provider, on_disk)
        if credentials is not None and credentials is not on_disk:
            return pending.document, credentials, on_disk.refresh_token
    if spent is not None and on_disk.refresh_token == spent:
        return None
    return document, on_disk, None


def applies(
    document: dict[str, Any], replaces: str, provider: ProviderName, on_disk: Credentials
) -> Credentials | None:
    """What a pending copy means beside the pool file's ``on_disk`` credentials: its own
    credentials when the file still holds the spent token, ``on_disk`` when the file
    already has them, None when the copy is obsolete (the file holds a newer login)."""
    try:
        credentials = PROVIDER_REGISTRY[provider].parse_credentials(document)
    except CredentialsError:
        return None
    if credentials.access_token == on_disk.access_token:
        return on_disk
    if fingerprint(on_disk.refresh_token) == replaces:
        return credentials
    return None
