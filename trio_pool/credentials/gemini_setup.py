"""Setting up Gemini accounts with Code Assist: tier, project, onboarding, eligibility.

Runs once per account (then cached on its PoolAccount until its pool file changes): when the
account is first loaded (``serve_gemini_setup``), and before its first request if that comes
sooner. A failed look-up is cached too, with a growing retry delay, so a request never waits
on a look-up that just failed (the old code re-called loadCodeAssist under the account lock
on every request). The decisions are pure (``providers.gemini_setup``); this module sends
the calls and applies the verdicts: a project for the bodies, or a needs-action state.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry, PoolAccount
from trio_pool.errors import TrioPoolError, UpstreamError
from trio_pool.providers import gemini_setup as steps
from trio_pool.providers.base import AccountAction, Credentials, PreparedRequest, ProviderName
from trio_pool.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

# The CLI polls an onboarding operation every 5 s, forever; we give up after a minute and
# try the whole set-up again later (the operation goes on server-side).
OPERATION_POLL_S = 5.0
OPERATION_POLLS = 12
RETRY_FIRST_S = 60.0
RETRY_MAX_S = 3600.0
CHECK_EVERY_S = 1.0
# The needs-action kinds this set-up sets, and so may clear once they no longer hold.
SETUP_ACTIONS = ("ineligible", "project_required", "validation_required")

Upstreams = Mapping[ProviderName, Mapping[str, str]]


def own_project(credentials: Credentials, upstreams: Upstreams) -> str | None:
    """The project the user chose: the pool file's ``project_id``, else ``[gemini] project``."""
    return credentials.project or upstreams["gemini"].get("project") or None


async def _call(client: UpstreamClient, request: PreparedRequest) -> tuple[int, bytes]:
    status, _headers, body = await client.request(
        request.method, request.url, list(request.headers), request.body
    )
    return status, body


async def run_setup(
    client: UpstreamClient, credentials: Credentials, upstreams: Upstreams
) -> steps.Ready | AccountAction | steps.Failed:
    """loadCodeAssist, and onboardUser plus its operation when there is no current tier."""
    gemini = upstreams["gemini"]
    project = own_project(credentials, upstreams)
    try:
        step = steps.read_load(
            *await _call(client, steps.load_request(credentials, gemini, project)), project
        )
        if isinstance(step, steps.Ready | AccountAction | steps.Failed):
            return step
        if isinstance(step, steps.Pending):
            return steps.Failed("loadCodeAssist answered an operation")
        onboard = step
        request = steps.onboard_request(credentials, gemini, onboard.tier, project)
        result = steps.read_operation(*await _call(client, request), project, onboard)
        for _ in range(OPERATION_POLLS):
            if not isinstance(result, steps.Pending):
                break
            await trio.sleep(OPERATION_POLL_S)
            request = steps.operation_request(credentials, gemini, result.name)
            result = steps.read_operation(*await _call(client, request), project, onboard)
    except UpstreamError as exc:
        return steps.Failed(f"Code Assist unreachable: {exc}")
    if isinstance(result, steps.Pending | steps.Onboard):
        return steps.Failed(f"onboarding still running after {OPERATION_POLLS} polls")
    return result


async def set_up(
    client: UpstreamClient,
    pool: Pool,
    account: PoolAccount,
    credentials: Credentials,
    upstreams: Upstreams,
) -> Credentials | AccountAction:
    """The account's credentials with its Code Assist project, or what the user must do.

    Non-Gemini accounts pass through. The first call for an account runs the set-up (one
    at a time per account); later calls use the cached result, and a failed look-up is
    not repeated before its retry time (the request goes on with the user's own project).
    """
    if account.provider != "gemini":
        return credentials
    if not account.setup_done and clock.now() >= account.setup_retry_at:
        async with account.lock:
            if not account.setup_done and clock.now() >= account.setup_retry_at:
                await _apply(pool, account, await run_setup(client, credentials, upstreams))
    action = pool.action_of(account.name)
    if action is not None:
        return action
    project = account.project or own_project(credentials, upstreams)
    return attrs.evolve(credentials, project=project) if project else credentials


async def _apply(
    pool: Pool, account: PoolAccount, step: steps.Ready | AccountAction | steps.Failed
) -> None:
    now = clock.now()
    if isinstance(step, steps.Failed):
        account.setup_failures += 1
        wait = min(RETRY_FIRST_S * 2 ** (account.setup_failures - 1), RETRY_MAX_S)
        account.setup_retry_at = now + wait
        log.warning(
            "gemini.setup.failed account=%s reason=%s retry_in_s=%.0f", account.name, step, wait
        )
        return
    account.setup_done = True
    account.setup_failures = 0
    if isinstance(step, AccountAction):
        pool.set_action(account.name, attrs.evolve(step, since_at=now))
        log.error(
            "gemini.setup.needs_action account=%s kind=%s message=%s",
            account.name,
            step.kind,
            step.message,
        )
        return
    account.project = step.project
    for kind in SETUP_ACTIONS:
        pool.clear_action(account.name, kind)
    log.info("gemini.setup.ok account=%s tier=%s", account.name, step.tier)


async def serve_gemini_setup(
    registry: AccountRegistry,
    pool: Pool,
    refresher: Refresher,
    client: UpstreamClient,
    upstreams: Upstreams,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Set up each Gemini account as soon as it is loaded (and again after its file
    changes), so an ineligible one shows as such before any request tries it."""
    task_status.started()
    while True:
        for account in list(registry.accounts.values()):
            if (
                account.provider != "gemini"
                or account.setup_done
                or clock.now() < account.setup_retry_at
            ):
                continue
            try:
                credentials = await refresher.fresh_credentials(account)
                await set_up(client, pool, account, credentials, upstreams)
            except TrioPoolError as exc:
                log.warning("gemini.setup.failed account=%s reason=%s", account.name, exc)
                account.setup_retry_at = clock.now() + RETRY_FIRST_S
        await trio.sleep(CHECK_EVERY_S)
