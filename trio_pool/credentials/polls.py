"""Polling the providers' usage endpoints for accounts the traffic has not told us about.

The schedule (which accounts, how often, backoff) is pure: ``accounts.polling``. This loop
only carries it out: fresh credentials, one GET/POST, and the reading handed to the pool.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import trio

from trio_pool import clock
from trio_pool.accounts.polling import PollSchedule
from trio_pool.accounts.pool import Pool
from trio_pool.credentials import gemini_setup
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry, PoolAccount
from trio_pool.errors import UpstreamError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import AccountAction, ProviderName
from trio_pool.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

CHECK_EVERY_S = 30.0
FIRST_CHECK_S = 5.0  # let the first requests report their own windows first


async def poll_account(
    account: PoolAccount,
    pool: Pool,
    refresher: Refresher,
    client: UpstreamClient,
    upstreams: Mapping[ProviderName, Mapping[str, str]],
) -> int | None:
    """One usage poll; the upstream status (None when it could not be reached)."""
    provider = PROVIDER_REGISTRY[account.provider]
    credentials = await refresher.fresh_credentials(account)
    set_up = await gemini_setup.set_up(client, pool, account, credentials, upstreams)
    if isinstance(set_up, AccountAction):
        return None  # out of rotation until the user acts: nothing to poll
    request = provider.usage_request(set_up, upstreams[account.provider])
    if request is None:
        return None
    try:
        status, _headers, body = await client.request(
            request.method, request.url, list(request.headers), request.body
        )
    except UpstreamError as exc:
        log.info("usage_poll.failed account=%s reason=%s", account.name, exc)
        return None
    reading = provider.parse_usage(status, body, clock.now())
    if reading is not None:
        pool.observe(account.name, reading, clock.now())
    log.debug("usage_poll.done account=%s status=%d", account.name, status)
    return status


async def serve_usage_polls(
    registry: AccountRegistry,
    pool: Pool,
    refresher: Refresher,
    client: UpstreamClient,
    upstreams: Mapping[ProviderName, Mapping[str, str]],
    *,
    first_check_s: float = FIRST_CHECK_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    schedule = PollSchedule()
    task_status.started()
    await trio.sleep(first_check_s)
    while True:
        now = clock.now()
        schedule.forget(set(registry.accounts))
        for name in schedule.due(pool.accounts(now), now):
            account = registry.get(name)
            if account is None:
                continue
            try:
                status = await poll_account(account, pool, refresher, client, upstreams)
            except Exception:
                # One account's failure (a bad answer, a bug) must not end the polls, nor
                # the app: it counts as an unreachable poll and the schedule backs off.
                log.exception("usage_poll.crashed account=%s", name)
                status = None
            schedule.polled(name, status, clock.now())
        await trio.sleep(CHECK_EVERY_S)
