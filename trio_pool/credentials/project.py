"""Gemini's Code Assist project: each account's request bodies carry it; learn it once.

The CLI asks ``loadCodeAssist`` at start-up which project the account uses; the proxy does
the same the first time an account serves (or is polled) without one in its file.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import attrs

from trio_pool.credentials.registry import PoolAccount
from trio_pool.errors import UpstreamError
from trio_pool.providers.base import Credentials, ProviderName
from trio_pool.providers.gemini_account import load_code_assist_request, parse_load_code_assist
from trio_pool.upstream.client import UpstreamClient

log = logging.getLogger(__name__)


async def with_project(
    client: UpstreamClient,
    account: PoolAccount,
    credentials: Credentials,
    upstreams: Mapping[ProviderName, Mapping[str, str]],
) -> Credentials:
    """Gemini bodies carry the account's project: learn it once from loadCodeAssist."""
    if account.provider != "gemini" or credentials.project:
        return credentials
    if account.project is None:
        async with account.lock:
            if account.project is None:
                account.project = await _learn_gemini_project(
                    client, credentials, upstreams["gemini"]
                )
    return attrs.evolve(credentials, project=account.project) if account.project else credentials


async def _learn_gemini_project(
    client: UpstreamClient, credentials: Credentials, upstreams: Mapping[str, str]
) -> str | None:
    """Ask Code Assist which project this account uses (the CLI does the same at start-up)."""
    request = load_code_assist_request(credentials, upstreams)
    try:
        status, _headers, body = await client.request(
            request.method, request.url, list(request.headers), request.body
        )
    except UpstreamError as exc:
        log.warning("gemini.project.lookup_failed reason=%s", exc)
        return None
    if status != 200:
        log.warning("gemini.project.lookup_failed status=%d", status)
        return None
    return parse_load_code_assist(body)
