"""One token call per rotation across hosts: the lease protocol driven from trio.

``FencedRefresh.refresh`` is the one function the refresher calls in multi-host mode; it
answers "acquire, may I send, write back" (the SQL is in ``state/pg/lease.py``):

1. take the account's lease (a live lease of another host: watch for its write-back);
2. re-read the stored credentials: if they moved past the token that failed, adopt them;
3. in doubt (a previous holder marked its intent and vanished): hold the lease and wait
   for its late write-back before spending the token again;
4. the intent mark, then the token call, bounded by what is left of the lease;
5. the write-back, a compare-and-set on the credential version; then release.

Fail closed: without the database, no lease, no token call. From the mark to the release
the refresh is shielded from cancellation: a request that gives up must not strand a
rotation the provider already made. A rotation whose write-back fails (engine down just
then) stays in memory and in a sealed pending copy (``pending.py``, the same copies a
single host keeps when its pool file cannot take new tokens), and is written back later.
"""

from __future__ import annotations

import logging
import os
import secrets
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from trio_pool import clock
from trio_pool.config import StateConfig
from trio_pool.credentials import pending as copies
from trio_pool.credentials.outcomes import (
    AccessOf,
    Adopted,
    Failed,
    Outcome,
    Rotated,
    Send,
    Stored,
)
from trio_pool.errors import CredentialsError, StateError
from trio_pool.state.pg import credentials as stored_credentials
from trio_pool.state.pg import lease
from trio_pool.state.pg.listen import Wakeup
from trio_pool.state.pg.sealing import Keyring
from trio_pool.state.pg.store import PgStore

log = logging.getLogger(__name__)

POLL_S = 0.25  # re-check a busy lease or a pending doubt (NOTIFY usually wakes us first)
MARGIN_S = 2.0  # never send with less lease than this left
FAULT_ENV = "TRIO_POOL_FAULT"


@attrs.frozen
class Pending:
    account: str
    expected: int  # the version the rotation started from
    document: dict[str, Any] = attrs.field(repr=False)


class FencedRefresh:
    def __init__(
        self,
        store: PgStore,
        keyring: Keyring,
        settings: StateConfig,
        *,
        data_dir: Path | None = None,
        wake: Wakeup | None = None,
    ) -> None:
        self.store = store
        self.keyring = keyring
        self.settings = settings
        self.data_dir = data_dir  # where pending copies are kept (None: memory only)
        self.wake = wake or Wakeup()
        self.pending: dict[str, Pending] = {}
        self.token_calls = 0  # for tests and /metrics

    async def refresh(
        self, account: str, stale_access: str, access_of: AccessOf, send: Send, *, wait_s: float
    ) -> Outcome:
        holder = f"{self.store.writer}:{secrets.token_hex(3)}"
        ttl, doubt = self.settings.refresh_lease_s, self.settings.refresh_doubt_wait_s
        give_up = trio.current_time() + wait_s
        while True:
            try:
                got = await self.store.run(lease.acquire, account, holder, ttl, doubt)
            except StateError as exc:
                return Failed(f"state engine unreachable, refresh not attempted ({exc})")
            if isinstance(got, lease.Held):
                break
            # Another host is refreshing: its write-back is what we wait for.
            found = await self._newer(account, stale_access, access_of)
            if found is not None:
                return found
            if trio.current_time() >= give_up:
                return Failed(
                    f"another host ({got.holder}) is refreshing", retry_after_s=1.0, busy=True
                )
            await self.wake.wait(min(POLL_S, max(0.01, give_up - trio.current_time())))
        return await self._holding(account, got, stale_access, access_of, send)

    async def _newer(self, account: str, stale_access: str, access_of: AccessOf) -> Adopted | None:
        try:
            current = await self.store.run(stored_credentials.read, self.keyring, account)
        except (StateError, CredentialsError):
            return None
        if current is not None and access_of(current.document) != stale_access:
            return Adopted(current.document, current.version)
        return None

    async def _holding(
        self, account: str, held: lease.Held, stale_access: str, access_of: AccessOf, send: Send
    ) -> Outcome:
        resolved = False
        try:
            current = await self.store.run(stored_credentials.read, self.keyring, account)
            if current is None:
                resolved = True
                return Failed("no stored credentials for this account")
            if access_of(current.document) != stale_access:
                resolved = held.doubt_left_s is None
                return Adopted(current.document, current.version)
            if held.doubt_left_s is not None:
                later = await self._wait_out_doubt(account, held.doubt_left_s, current.version)
                if later is not None:
                    resolved = True
                    return later
            with trio.CancelScope(shield=True):
                outcome, resolved = await self._send(
                    account, held, current.version, current.document, send
                )
            return outcome
        except StateError as exc:
            return Failed(f"state engine unreachable during the refresh ({exc})")
        finally:
            with trio.move_on_after(5, shield=True):
                try:
                    await self.store.run(lease.release, account, held.epoch, resolved=resolved)
                except StateError:
                    pass  # it expires by itself

    async def _wait_out_doubt(self, account: str, left_s: float, version: int) -> Outcome | None:
        log.warning(
            "credentials.refresh.in_doubt account=%s wait_s=%.1f (a host marked a refresh and "
            "vanished; waiting for its write-back before sending again)",
            account,
            max(0.0, left_s),
        )
        end = trio.current_time() + max(0.0, left_s)
        while trio.current_time() < end:
            await self.wake.wait(min(POLL_S, end - trio.current_time()))
            if await self.store.run(lease.version, account) != version:
                current = await self.store.run(stored_credentials.read, self.keyring, account)
                if current is not None:
                    return Adopted(current.document, current.version)
        log.warning("credentials.refresh.doubt_expired account=%s (sending)", account)
        return None

    async def _send(
        self, account: str, held: lease.Held, version: int, document: dict[str, Any], send: Send
    ) -> tuple[Outcome, bool]:
        """Shielded: mark, call, write back. (outcome, whether the send's fate is known)."""
        await fault_point("before_mark")
        left = await self.store.run(lease.mark, account, held.epoch, version, MARGIN_S)
        if left is None:
            log.warning("credentials.refresh.lease_lost account=%s (not sent)", account)
            lost = Failed("lost the refresh lease before sending", retry_after_s=1.0, busy=True)
            return lost, False
        self.token_calls += 1
        with trio.move_on_after(max(0.1, left - MARGIN_S)) as scope:
            result = await send(document)
        if scope.cancelled_caught:
            log.error(
                "credentials.refresh.unknown account=%s (token call outlived the lease)", account
            )
            return Failed("token call timed out; its outcome is unknown", sent=True), False
        if isinstance(result, Rotated):
            await fault_point("after_send")
            # The old refresh token is spent: keep the new one on disk before anything else
            # can fail, so a crash from here on is recovered by this host's next start.
            await self._spool(Pending(account, version, result.document))
            await fault_point("after_spool")
            return await self._write_back(account, version, result.document), True
        return result, not (isinstance(result, Failed) and result.sent)

    async def _write_back(self, account: str, expected: int, document: dict[str, Any]) -> Outcome:
        try:
            landed = await self.store.run(
                stored_credentials.compare_and_set, self.keyring, account, expected, document,
                writer=self.store.writer, now=clock.now(),
            )  # fmt: skip
        except StateError as exc:
            log.error(
                "credentials.refresh.write_back_pending account=%s reason=%s (kept in memory "
                "and in the spool; written when the engine is back)",
                account,
                exc,
            )
            self.pending[account] = Pending(account, expected, document)
            return Stored(document, None)
        await self._unspool(account)
        if landed is None:
            current = await self.store.run(stored_credentials.read, self.keyring, account)
            log.error(
                "credentials.refresh.stale_write_back account=%s (a newer one is stored)", account
            )
            if current is None:
                return Failed("credentials removed during the refresh")
            return Adopted(current.document, current.version)
        return Stored(document, landed)

    # -- write-backs that could not land yet ------------------------------------------------

    async def _unspool(self, account: str) -> None:
        self.pending.pop(account, None)
        if self.data_dir is not None:
            await trio.to_thread.run_sync(copies.remove_pending, self.data_dir, account)

    async def _spool(self, pending: Pending) -> None:
        """Keep a rotation the database did not take yet: the old refresh token is spent, so
        this copy is the account. Sealed (bound to the version it starts from), 0600,
        fsynced, before the compare-and-set is even tried."""
        if self.data_dir is None:
            return
        try:
            await trio.to_thread.run_sync(
                partial(
                    copies.save_pending, self.data_dir, pending.account, pending.document, None,
                    base_version=pending.expected, sealer=self.keyring,
                )
            )  # fmt: skip
        except CredentialsError as exc:
            log.error("credentials.pending.failed account=%s reason=%s", pending.account, exc)

    async def load_spool(self) -> None:
        """Pending write-backs that a previous run of this host left (it died first)."""
        if self.data_dir is None:
            return
        for account in await trio.to_thread.run_sync(copies.list_pending, self.data_dir):
            try:
                found = await trio.to_thread.run_sync(
                    partial(copies.load_pending, self.data_dir, account, sealer=self.keyring)
                )
            except CredentialsError as exc:
                log.error("credentials.pending.unreadable account=%s reason=%s", account, exc)
                continue
            if found is None or found.base_version is None:
                continue  # a single-host copy (writeback.py), or not one of ours
            self.pending[account] = Pending(account, found.base_version, found.document)
            log.warning("credentials.pending.found account=%s (writing it back)", account)

    async def flush_pending(self) -> list[tuple[str, Outcome]]:
        """Try every pending write-back once; what became of each that resolved."""
        done: list[tuple[str, Outcome]] = []
        for account, pending in list(self.pending.items()):
            try:
                outcome = await self._write_back_once(pending)
            except StateError:
                return done
            await self._unspool(account)
            done.append((account, outcome))
        return done

    async def _write_back_once(self, pending: Pending) -> Outcome:
        landed = await self.store.run(
            stored_credentials.compare_and_set, self.keyring, pending.account, pending.expected,
            pending.document, writer=self.store.writer, now=clock.now(),
        )  # fmt: skip
        if landed is not None:
            log.info("credentials.write_back.landed account=%s version=%d", pending.account, landed)
            return Stored(pending.document, landed)
        current = await self.store.run(stored_credentials.read, self.keyring, pending.account)
        if current is None:
            return Failed("credentials removed meanwhile")
        return Adopted(current.document, current.version)


async def fault_point(name: str) -> None:
    """Test hook for the multi-host fault tests: with ``TRIO_POOL_FAULT=<name>:<seconds>``
    the refresh logs ``fault.point name=...`` and sleeps there, so a test can kill -9 or
    SIGSTOP the holder at an exact step. Unset in production (one dict lookup)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, seconds = spec.partition(":")
    if point == name:
        log.warning("fault.point name=%s pid=%d", name, os.getpid())
        await trio.sleep(float(seconds or 0))
