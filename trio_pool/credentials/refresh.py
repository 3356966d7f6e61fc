"""Keeping access tokens fresh: ahead of expiry and after a 401, one refresh at a time.

Codex and Claude refresh tokens are single-use: two refreshes racing with the same token kill
the token family and the user has to log in again. So a refresh (1) takes the account's lock,
(2) re-reads the file, because another process may already have rotated the token, (3) calls
the token endpoint once, and (4) adopts the new tokens and writes them to the file before
releasing the lock (``writeback.py`` covers a write that fails).

A refresh, once started, always finishes, whoever asked for it: it runs as a task of the
refresh service (``serve``, in the app's root nursery), shielded with its own deadline, and the
requests that need it only wait for its result. A client that hangs up, or the shutdown
deadline cancelling a request, cancels the waiting, never the token call or the write that
follows it: that is the moment the old token is spent and the new one exists only in memory.

With several hosts (``state_url``), step (2)-(4) become the lease protocol of ``fenced.py``
(``multihost.py`` is the refresher's side of it): same service, same shielded job, but the
lock is a lease in PostgreSQL and the write is a compare-and-set on the credential version.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from typing import TYPE_CHECKING, TypeVar

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.config import Config
from trio_pool.credentials.multihost import FencedPath, still_valid
from trio_pool.credentials.outcomes import Failed, Rejected, Rotated, SendResult
from trio_pool.credentials.registry import AccountRegistry, PoolAccount
from trio_pool.credentials.store import write_document_atomic
from trio_pool.credentials.writeback import WRITE_CHECK_EVERY_S, WriteBack, Writer
from trio_pool.errors import CredentialsError, UpstreamConnectError, UpstreamError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import Credentials, RefreshVerdict
from trio_pool.providers.tokens import token_retry_after_s
from trio_pool.state.store import LOCK_WAIT_S, StateStore
from trio_pool.upstream.client import UpstreamClient

if TYPE_CHECKING:
    from trio_pool.credentials.fenced import FencedRefresh
    from trio_pool.credentials.outcomes import Outcome
    from trio_pool.usage.metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

REFRESH_LEAD_S = 300.0  # refresh this long before expiry (Claude Code and Gemini CLI use 5 min)
BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 600.0
# Gave up waiting for another process's refresh: its new token is in the file by then.
LOCK_RETRY_S = 2.0
LOCK_TTL_MARGIN_S = 30.0
# On top of the lock wait and the token call's own timeouts: the re-read and the write.
JOB_MARGIN_S = 30.0


@attrs.define(eq=False)
class _Job:
    """One refresh in flight; its waiters read ``changed`` once ``done`` is set."""

    stale: Credentials = attrs.field(repr=False)
    reason: str = ""
    done: trio.Event = attrs.field(factory=trio.Event)
    changed: bool = False


class Refresher:
    def __init__(
        self,
        config: Config,
        registry: AccountRegistry,
        pool: Pool,
        client: UpstreamClient,
        *,
        state: StateStore | None,
        metrics: Metrics | None = None,
        write: Writer = write_document_atomic,
        fenced: FencedRefresh | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.pool = pool
        self.client = client
        # The host-wide refresh lock lives in state.db. Required, so that every caller says
        # which one it uses: None only when the proxy runs without its state db, as a
        # single process; the CLI refuses to refresh without it.
        self.state = state
        self.metrics = metrics  # refreshes by result, for GET /metrics
        self.writeback = WriteBack(config, registry, write=write)
        # Multi-host mode: the lease in PostgreSQL replaces the host lock, the stored
        # credentials replace the pool file (``multihost.py``).
        self.multihost = None if fenced is None else FencedPath(self, fenced)
        self._jobs: dict[str, _Job] = {}
        self._nursery: trio.Nursery | None = None

    # -- the service ----------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run refreshes and write-back retries until cancelled; then wait for the refreshes
        in flight (each bounded by its own deadline) before returning."""
        if self.multihost is None:
            # Multi-host: the pool files are not written; pending write-backs are landed by
            # ``shared.py`` before serving.
            await self.writeback.recover()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.multihost is None:
                    nursery.start_soon(self._serve_write_backs)
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    # From here on a refresh runs in its caller's task (still shielded).
                    self._nursery = None
                    if self._jobs:
                        log.info("credentials.refresh.shutdown_wait in_flight=%d", len(self._jobs))
        finally:
            self._nursery = None

    async def _serve_write_backs(self) -> None:
        while True:
            await trio.sleep(WRITE_CHECK_EVERY_S)
            for account in self.writeback.due(clock.now()):
                try:
                    await self._under_locks(account, self.writeback.retry)
                except Exception:
                    # One account's failure never ends the service (nor the app).
                    log.exception("credentials.write_back.crashed account=%s", account.name)

    def in_flight(self) -> int:
        return len(self._jobs)

    # -- asking for a refresh ---------------------------------------------------------------

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
        """The account's credentials, refreshed first if they expire soon.

        Multi-host: a token that still works is used while the refresh runs (it may wait
        for another host's lease, or a vanished holder's write-back): no request waits.
        """
        now = clock.now()
        if self.needs_refresh(account, now):
            stale = account.credentials
            wait = self.multihost is None or not still_valid(stale, now)
            await self.refresh(account, reason="expiry", stale=stale, wait=wait)
        return account.credentials

    async def refresh(
        self, account: PoolAccount, *, reason: str, stale: Credentials, wait: bool = True
    ) -> bool:
        """Refresh once; True when ``account.credentials`` now differ from ``stale``.

        Callers pass the credentials that failed (or are about to expire); if someone else
        already replaced them, nothing is sent. Cancelling the caller cancels only its wait.
        ``wait=False`` starts the refresh (when the service runs) and returns False at once.
        """
        changed, joined = await self._start_or_join(account, reason, stale, wait)
        if not changed and joined == "expiry" and reason != "expiry" and self.multihost:
            # Multi-host: we joined a refresh ahead of expiry, which does not wait for
            # another host's lease; this caller's token failed, so it may wait: once more.
            changed, _ = await self._start_or_join(account, reason, stale, wait)
        return changed

    async def _start_or_join(
        self, account: PoolAccount, reason: str, stale: Credentials, wait: bool
    ) -> tuple[bool, str]:
        """(changed, the reason of the job waited for: "" when none ran)."""
        job = self._jobs.get(account.name)
        if job is None:
            if account.credentials.access_token != stale.access_token:
                return True, ""
            if clock.now() < account.refresh_retry_at:
                return False, ""
            job = _Job(stale, reason)
            self._jobs[account.name] = job
            if self._nursery is not None:
                self._nursery.start_soon(self._run_job, account, job, reason)
            else:
                await self._run_job(account, job, reason)  # no service (one-shot CLI use)
        if not wait and not job.done.is_set():
            return False, ""
        await job.done.wait()
        return job.changed or account.credentials.access_token != stale.access_token, job.reason

    async def _run_job(self, account: PoolAccount, job: _Job, reason: str) -> None:
        try:
            # Shielded with its own deadline: nobody's cancellation may stop a token call
            # between "the endpoint rotated the token" and "the new one is adopted".
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + self._job_timeout_s()
                job.changed = await self._refresh_once(account, reason=reason, stale=job.stale)
            if scope.cancelled_caught:
                self.backoff(account, "the refresh did not finish in time")
        except Exception:
            # A bug in one account's refresh must not end the service (nor the app).
            log.exception("credentials.refresh.crashed account=%s", account.name)
            self.backoff(account, "internal error (see the traceback above)")
        finally:
            if self._jobs.get(account.name) is job:
                del self._jobs[account.name]
            job.done.set()

    def _job_timeout_s(self) -> float:
        if self.multihost is not None:
            return self.multihost.job_timeout_s()
        return (
            LOCK_WAIT_S
            + self.config.upstream_connect_timeout_s
            + self.config.upstream_first_byte_timeout_s
            + JOB_MARGIN_S
        )

    async def _refresh_once(self, account: PoolAccount, *, reason: str, stale: Credentials) -> bool:
        if self.multihost is not None:
            async with account.lock:
                if account.credentials.access_token != stale.access_token:
                    return True
                if clock.now() < account.refresh_retry_at:
                    return False
                return await self.multihost.refresh(account, reason=reason, stale=stale)

        async def locked(account: PoolAccount) -> bool:
            return await self._refresh_locked(account, reason=reason, stale=stale)

        return bool(await self._under_locks(account, locked, stale=stale))

    async def _under_locks(
        self,
        account: PoolAccount,
        fn: Callable[[PoolAccount], Awaitable[T]],
        *,
        stale: Credentials | None = None,
    ) -> T | bool:
        """``fn(account)`` under the account's lock and the host-wide lock; with ``stale``,
        False (or True) without calling it when a refresh is not due (or already done)."""
        async with account.lock:
            if stale is not None:
                if account.credentials.access_token != stale.access_token:
                    return True
                if clock.now() < account.refresh_retry_at:
                    return False
            async with self._host_lock(account) as held:
                if not held:
                    self.backoff(
                        account, "another process held the refresh lock too long", LOCK_RETRY_S
                    )
                    return False
                return await fn(account)

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
        """Under both locks: re-read, then call the endpoint only if still stale.

        Another process (or the user's CLI) may have rotated the tokens already, into the
        file or, when it could not write the file, into its pending copy.
        """
        try:
            changed = await self.writeback.sync_from_host(account)
        except CredentialsError as exc:
            log.warning("credentials.refresh.unreadable account=%s reason=%s", account.name, exc)
            return False
        if account.credentials.access_token != stale.access_token:
            if changed:
                self.pool.clear_needs_relogin(account.name)
            return True
        return await self._call_token_endpoint(
            account, account.document, account.credentials, reason
        )

    async def _call_token_endpoint(
        self,
        account: PoolAccount,
        document: dict[str, object],
        credentials: Credentials,
        reason: str,
    ) -> bool:
        log.info("credentials.refresh.start account=%s reason=%s", account.name, reason)
        result = await self.token_call(account, document, credentials)
        if isinstance(result, Rotated):
            provider = PROVIDER_REGISTRY[account.provider]
            new_document = result.document
            new_credentials = provider.parse_credentials(new_document)  # checked in token_call
            # The old refresh token is spent: adopt the new tokens at once, then write them
            # before the lock is released (a failed write keeps them in memory, see
            # writeback.py). ``spent`` is the refresh token the file may still hold.
            spent = account.spent_refresh if account.unsaved else credentials.refresh_token
            self.registry.adopt(account, new_document, new_credentials)
            self.pool.clear_needs_relogin(account.name)
            account.refresh_failures = 0
            account.refresh_retry_at = 0.0
            await self.writeback.store(account, new_document, spent)
            log.info("credentials.refresh.ok account=%s", account.name)
            self.count(account, "ok")
            return True
        if isinstance(result, Rejected):
            self.reject(account, result.reason)
            return False
        self.backoff(account, result.reason, result.retry_after_s, at_least_s=result.at_least_s)
        return False

    async def token_call(
        self, account: PoolAccount, document: dict[str, object], credentials: Credentials
    ) -> SendResult:
        """One call to the token endpoint and the provider's verdict; nothing adopted or
        stored (the caller does that: single host here, multi-host in ``fenced.py``)."""
        provider = PROVIDER_REGISTRY[account.provider]
        request = provider.refresh_request(credentials, self._token_url(account))
        try:
            status, headers, body = await self.client.request(
                "POST", request.url, list(request.headers), request.body
            )
        except UpstreamError as exc:
            # Only a failed connect proves the request never left (multi-host: in doubt).
            sent = not isinstance(exc, UpstreamConnectError)
            return Failed(f"token endpoint unreachable: {exc}", sent=sent)
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
        # A 429 from the token endpoint names how long to stay away; asking sooner only
        # prolongs the block (CPA waits for Retry-After too).
        return Failed(
            result.reason or f"token endpoint answered {status}",
            result.retry_after_s,
            at_least_s=token_retry_after_s(headers),
        )

    def reject(self, account: PoolAccount, reason: str) -> None:
        """The provider refused the refresh token for good: needs re-login."""
        log.error(
            "credentials.refresh.rejected account=%s reason=%s hint='log in again: "
            "trio-pool accounts login %s --name %s'",
            account.name,
            reason,
            account.provider,
            account.name.split("/", 1)[1],
        )
        self.pool.set_needs_relogin(account.name, reason)
        self.count(account, "rejected")

    def adopt_stored(self, account: PoolAccount, outcome: Outcome) -> bool:
        """Multi-host: take credentials a fenced refresh stored or found (``multihost.py``)."""
        return self.multihost is not None and self.multihost.adopt_stored(account, outcome)

    def backoff(
        self,
        account: PoolAccount,
        reason: str,
        retry_after_s: float | None = None,
        *,
        at_least_s: float | None = None,
    ) -> None:
        """A transient failure: try again later; the account stays in rotation while its token works."""
        self.count(account, "failed")
        account.refresh_failures += 1
        delay = retry_after_s or min(
            BACKOFF_MAX_S, BACKOFF_FIRST_S * 2 ** (account.refresh_failures - 1)
        )
        delay = max(delay, at_least_s or 0.0)
        account.refresh_retry_at = clock.now() + delay
        log.warning(
            "credentials.refresh.failed account=%s reason=%s retry_in_s=%.0f",
            account.name,
            reason,
            delay,
        )

    def count(self, account: PoolAccount, result: str) -> None:
        if self.metrics is not None:
            self.metrics.refresh(account.provider, account.name, result)
