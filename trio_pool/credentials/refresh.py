"""Keeping access tokens fresh: ahead of expiry and after a 401, one refresh at a time.

Codex and Claude refresh tokens are single-use: two refreshes racing with the same token kill
the token family and the user has to log in again. So a refresh (1) takes the account's lock,
(2) re-reads the file, because another process may already have rotated the token, (3) calls
the token endpoint once, and (4) writes the new tokens to the file before releasing the lock.
"""

from __future__ import annotations

import logging
import math
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING

import trio

from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.config import Config
from trio_pool.credentials.fenced import (
    Failed,
    FencedRefresh,
    Outcome,
    Rejected,
    Rotated,
    SendResult,
    Stored,
)
from trio_pool.credentials.registry import AccountRegistry, PoolAccount, read_account_file
from trio_pool.credentials.store import write_document_atomic
from trio_pool.errors import CredentialsError, UpstreamConnectError, UpstreamError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import Credentials, RefreshVerdict
from trio_pool.state.store import StateStore
from trio_pool.upstream.client import UpstreamClient

if TYPE_CHECKING:
    from trio_pool.proxy.metrics import Metrics

log = logging.getLogger(__name__)

REFRESH_LEAD_S = 300.0  # refresh this long before expiry (Claude Code and Gemini CLI use 5 min)
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 600.0
# Gave up waiting for another process's refresh: its new token is in the file by then.
LOCK_RETRY_S = 2.0
LOCK_WAIT_S = 20.0  # multi-host: how long a request with an expired token waits for a lease
LOCK_TTL_MARGIN_S = 30.0


class Refresher:
    def __init__(
        self,
        config: Config,
        registry: AccountRegistry,
        pool: Pool,
        client: UpstreamClient,
        *,
        state: StateStore | None = None,
        metrics: Metrics | None = None,
        fenced: FencedRefresh | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.pool = pool
        self.client = client
        # The host-wide refresh lock lives in state.db; without a store only the
        # in-process lock applies (one process, e.g. unit tests).
        self.state = state
        self.metrics = metrics  # refreshes by result, for GET /metrics
        # Multi-host mode: the lease in PostgreSQL replaces the host lock and the file.
        self.fenced = fenced

    def _token_url(self, account: PoolAccount) -> str:
        section = getattr(self.config, account.provider)
        return str(section.token_url)

    def needs_refresh(self, account: PoolAccount, now: float) -> bool:
        expires_at = account.credentials.expires_at
        return (
            expires_at is not None
            and expires_at - now < REFRESH_LEAD_S
            and now >= max(account.refresh_retry_at, account.refresh_elsewhere_until)
            and account.credentials.refresh_token is not None
        )

    async def fresh_credentials(self, account: PoolAccount) -> Credentials:
        """The account's credentials, refreshed first if they expire soon."""
        if self.needs_refresh(account, clock.now()):
            await self.refresh(account, reason="expiry", stale=account.credentials)
        return account.credentials

    async def refresh(self, account: PoolAccount, *, reason: str, stale: Credentials) -> bool:
        """Refresh once; True when ``account.credentials`` now differ from ``stale``.

        Callers pass the credentials that failed (or are about to expire); if someone else
        already replaced them while we waited for the lock, nothing is sent.
        """
        async with account.lock:
            if account.credentials.access_token != stale.access_token:
                return True
            if clock.now() < account.refresh_retry_at:
                return False
            if self.fenced is not None:
                return await self._refresh_fenced(account, self.fenced, reason=reason, stale=stale)
            async with self._host_lock(account) as held:
                if not held:
                    self._backoff(
                        account, "another process held the refresh lock too long", LOCK_RETRY_S
                    )
                    return False
                return await self._refresh_locked(account, reason=reason, stale=stale)

    def _host_lock(self, account: PoolAccount) -> AbstractAsyncContextManager[bool]:
        if self.state is None:
            return nullcontext(True)
        # The lock must outlive the slowest token call it covers, or a second process could
        # take it while the first is still waiting for its answer.
        ttl_s = (
            self.config.upstream_connect_timeout_s
            + self.config.upstream_first_byte_timeout_s
            + LOCK_TTL_MARGIN_S
        )
        return self.state.refresh_lock(account.name, ttl_s=ttl_s)

    async def _refresh_locked(
        self, account: PoolAccount, *, reason: str, stale: Credentials
    ) -> bool:
        """Under both locks: re-read the file, then call the endpoint only if still stale."""
        # Another process (or the user's CLI) may have rotated the tokens already.
        try:
            document, on_disk = await trio.to_thread.run_sync(
                read_account_file, account.path, account.provider
            )
        except CredentialsError as exc:
            log.warning("credentials.refresh.unreadable account=%s reason=%s", account.name, exc)
            return False
        if on_disk.access_token != stale.access_token:
            self.registry.update_from_write(account, document, on_disk)
            self.pool.clear_needs_relogin(account.name)
            return True
        return await self._call_token_endpoint(account, document, on_disk, reason)

    async def _call_token_endpoint(
        self,
        account: PoolAccount,
        document: dict[str, object],
        credentials: Credentials,
        reason: str,
    ) -> bool:
        provider = PROVIDER_REGISTRY[account.provider]
        request = provider.refresh_request(credentials, self._token_url(account))
        log.info("credentials.refresh.start account=%s reason=%s", account.name, reason)
        try:
            status, _headers, body = await self.client.request(
                "POST", request.url, list(request.headers), request.body
            )
        except UpstreamError as exc:
            self._backoff(account, f"token endpoint unreachable: {exc}")
            return False
        result = provider.refresh_result(status, body, document, clock.now())
        if result.verdict is RefreshVerdict.OK and result.document is not None:
            new_document = dict(result.document)
            try:
                new_credentials = provider.parse_credentials(new_document)
            except CredentialsError as exc:
                self._backoff(account, f"token endpoint answer unusable: {exc}")
                return False
            # Written before the lock is released: the old refresh token is already spent.
            await trio.to_thread.run_sync(write_document_atomic, account.path, new_document)
            self.registry.update_from_write(account, new_document, new_credentials)
            account.refresh_failures = 0
            account.refresh_retry_at = 0.0
            log.info("credentials.refresh.ok account=%s", account.name)
            self._count(account, "ok")
            return True
        if result.verdict is RefreshVerdict.PERMANENT:
            log.error(
                "credentials.refresh.rejected account=%s reason=%s hint='log in again: "
                "trio-pool accounts login %s --name %s'",
                account.name,
                result.reason,
                account.provider,
                account.name.split("/", 1)[1],
            )
            self.pool.set_needs_relogin(account.name, result.reason or "refresh token rejected")
            self._count(account, "rejected")
            return False
        self._backoff(
            account, result.reason or f"token endpoint answered {status}", result.retry_after_s
        )
        return False

    async def _refresh_fenced(
        self, account: PoolAccount, fenced: FencedRefresh, *, reason: str, stale: Credentials
    ) -> bool:
        """Multi-host: one token call per rotation across hosts (``fenced.py``)."""
        provider = PROVIDER_REGISTRY[account.provider]
        expires_at = stale.expires_at
        valid = expires_at is not None and expires_at > clock.now() + 5 and reason == "expiry"
        # A token that still works is used while another host refreshes: no waiting, and
        # no database round trip per request (the retry time below spaces the checks).
        wait_s = 0.0 if valid else LOCK_WAIT_S

        def access_of(document: dict[str, object]) -> str:
            return provider.parse_credentials(document).access_token

        async def send(document: dict[str, object]) -> SendResult:
            log.info("credentials.refresh.start account=%s reason=%s", account.name, reason)
            return await self._send(account, document, provider.parse_credentials(document))

        outcome = await fenced.refresh(
            account.name, stale.access_token, access_of, send, wait_s=wait_s
        )
        if isinstance(outcome, Rejected):
            self._reject(account, outcome.reason)
            # Never again with this token (a reuse can end the whole family): only new
            # credentials (a re-login, imported) reset this.
            account.refresh_retry_at = math.inf
            return False
        if isinstance(outcome, Failed):
            if valid and outcome.retry_after_s is not None:
                account.refresh_elsewhere_until = clock.now() + outcome.retry_after_s
                return False
            self._backoff(account, outcome.reason, outcome.retry_after_s)
            return False
        return self.adopt_stored(account, outcome)

    def adopt_stored(self, account: PoolAccount, outcome: Outcome) -> bool:
        """Take credentials the fenced refresh stored or found (its version becomes the
        account's signature: needs-re-login verdicts about older versions are stale)."""
        provider = PROVIDER_REGISTRY[account.provider]
        document = dict(getattr(outcome, "document", {}))
        try:
            credentials = provider.parse_credentials(document)
        except CredentialsError as exc:
            self._backoff(account, f"stored credentials unusable: {exc}")
            return False
        self.registry.update_from_write(account, document, credentials)
        version = getattr(outcome, "version", None)
        if version is not None:
            account.signature = (int(version), 0, 0)
        account.refresh_failures = 0
        account.refresh_retry_at = 0.0
        self.pool.clear_needs_relogin(account.name)
        if isinstance(outcome, Stored):
            log.info("credentials.refresh.ok account=%s", account.name)
            self._count(account, "ok")
        return True

    async def _send(
        self, account: PoolAccount, document: dict[str, object], credentials: Credentials
    ) -> SendResult:
        """One token call; the provider's verdict, nothing stored."""
        provider = PROVIDER_REGISTRY[account.provider]
        request = provider.refresh_request(credentials, self._token_url(account))
        try:
            status, _headers, body = await self.client.request(
                "POST", request.url, list(request.headers), request.body
            )
        except UpstreamError as exc:
            # Only a failed connect proves the request never left.
            return Failed(
                f"token endpoint unreachable: {exc}", sent=not isinstance(exc, UpstreamConnectError)
            )
        result = provider.refresh_result(status, body, document, clock.now())
        if result.verdict is RefreshVerdict.OK and result.document is not None:
            new_document = dict(result.document)
            try:
                provider.parse_credentials(new_document)
            except CredentialsError as exc:
                return Failed(f"token endpoint answer unusable: {exc}", sent=True)
            return Rotated(new_document)
        if result.verdict is RefreshVerdict.PERMANENT:
            return Rejected(result.reason or "refresh token rejected")
        return Failed(result.reason or f"token endpoint answered {status}", result.retry_after_s)

    def _reject(self, account: PoolAccount, reason: str) -> None:
        log.error(
            "credentials.refresh.rejected account=%s reason=%s hint='log in again: "
            "trio-pool accounts login %s --name %s'",
            account.name,
            reason,
            account.provider,
            account.name.split("/", 1)[1],
        )
        self.pool.set_needs_relogin(account.name, reason)
        self._count(account, "rejected")

    def _backoff(
        self, account: PoolAccount, reason: str, retry_after_s: float | None = None
    ) -> None:
        """A transient failure: try again later; the account stays in rotation while its token works."""
        self._count(account, "failed")
        account.refresh_failures += 1
        delay = retry_after_s or min(
            BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (account.refresh_failures - 1)
        )
        account.refresh_retry_at = clock.now() + delay
        log.warning(
            "credentials.refresh.failed account=%s reason=%s retry_in_s=%.0f",
            account.name,
            reason,
            delay,
        )

    def _count(self, account: PoolAccount, result: str) -> None:
        if self.metrics is not None:
            self.metrics.refresh(account.provider, account.name, result)
