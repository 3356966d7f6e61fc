"""The refresher's multi-host path: one token call per rotation across hosts.

``Refresher`` runs every refresh as a shielded job of its service (``refresh.py``); with
``state_url`` set, the job calls ``FencedPath.refresh`` instead of taking the host lock and
re-reading the pool file. That drives ``fenced.FencedRefresh`` (lease, intent mark, token
call, compare-and-set on the credential version) and applies what came of it to the
account: adopt the stored credentials, back off, or mark it for re-login.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from trio_pool import clock
from trio_pool.credentials.outcomes import Failed, Outcome, Rejected, SendResult, Stored
from trio_pool.credentials.registry import PoolAccount
from trio_pool.errors import CredentialsError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import Credentials

if TYPE_CHECKING:
    from trio_pool.credentials.fenced import FencedRefresh
    from trio_pool.credentials.refresh import Refresher

log = logging.getLogger(__name__)

# How long a refresh whose token has already expired waits for another host's lease (its
# write-back is adopted as soon as it lands; a NOTIFY wakes the wait).
LEASE_WAIT_S = 20.0
VALID_MARGIN_S = 5.0  # an access token this close to expiry counts as expired
JOB_MARGIN_S = 30.0


def still_valid(credentials: Credentials, now: float) -> bool:
    """The access token works for a while yet (a refresh ahead of expiry need not wait)."""
    expires_at = credentials.expires_at
    return expires_at is not None and expires_at > now + VALID_MARGIN_S


class FencedPath:
    def __init__(self, refresher: Refresher, fenced: FencedRefresh) -> None:
        self.refresher = refresher
        self.fenced = fenced

    def job_timeout_s(self) -> float:
        """The job's own deadline: a lease wait, a doubt wait, then one leased token call.
        (The mark-to-write-back stretch is shielded inside ``fenced.py`` regardless.)"""
        settings = self.fenced.settings
        return (
            LEASE_WAIT_S + settings.refresh_doubt_wait_s + settings.refresh_lease_s + JOB_MARGIN_S
        )

    async def refresh(self, account: PoolAccount, *, reason: str, stale: Credentials) -> bool:
        """Under the account's lock, in the refresh job: True when the credentials changed."""
        refresher = self.refresher
        provider = PROVIDER_REGISTRY[account.provider]
        valid = reason == "expiry" and still_valid(stale, clock.now())
        # A token that still works is used while another host refreshes: do not wait for
        # its lease (the retry time below spaces the checks; no round trip per request).
        wait_s = 0.0 if valid else LEASE_WAIT_S

        def access_of(document: dict[str, Any]) -> str:
            return provider.parse_credentials(document).access_token

        async def send(document: dict[str, Any]) -> SendResult:
            log.info("credentials.refresh.start account=%s reason=%s", account.name, reason)
            credentials = provider.parse_credentials(document)
            return await refresher.token_call(account, document, credentials)

        outcome = await self.fenced.refresh(
            account.name, stale.access_token, access_of, send, wait_s=wait_s
        )
        if isinstance(outcome, Rejected):
            refresher.reject(account, outcome.reason)
            # Never again with this token (a reuse can end the whole family): only new
            # credentials (a re-login, an import) reset this.
            account.refresh_retry_at = math.inf
            return False
        if isinstance(outcome, Failed):
            if valid and outcome.busy:
                # Another host holds the lease: its token will be adopted when it lands.
                account.refresh_elsewhere_until = clock.now() + (outcome.retry_after_s or 1.0)
                return False
            refresher.backoff(
                account, outcome.reason, outcome.retry_after_s, at_least_s=outcome.at_least_s
            )
            return False
        return self.adopt_stored(account, outcome)

    def adopt_stored(self, account: PoolAccount, outcome: Outcome) -> bool:
        """Take credentials the fenced refresh stored or found. Their version becomes the
        account's signature: needs-re-login and needs-action verdicts about older versions
        are stale (``state/merge.py``)."""
        refresher = self.refresher
        if isinstance(outcome, Rejected | Failed):
            return False
        provider = PROVIDER_REGISTRY[account.provider]
        document = dict(outcome.document)
        try:
            credentials = provider.parse_credentials(document)
        except CredentialsError as exc:
            refresher.backoff(account, f"stored credentials unusable: {exc}")
            return False
        # Not ``update_from_write``: no pool file is written here, and the signature is the
        # credential version (a write-back still pending keeps the one it started from).
        refresher.registry.adopt(account, document, credentials)
        if outcome.version is not None:
            account.signature = (int(outcome.version), 0, 0)
        account.refresh_failures = 0
        account.refresh_retry_at = 0.0
        refresher.pool.clear_needs_relogin(account.name)
        if isinstance(outcome, Stored):
            log.info("credentials.refresh.ok account=%s", account.name)
            refresher.count(account, "ok")
        return True
