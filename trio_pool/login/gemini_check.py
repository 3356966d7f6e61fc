"""Is this Google login usable with Code Assist? Asked at ``accounts login`` and ``import``.

Since 2026-06-18 Code Assist refuses individual Google accounts (free, AI Pro, AI Ultra):
such a login is refused here, with Google's own reason, and never written to the pool. A
Standard/Enterprise login that still needs a project is kept, with the hint to set one.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs

from trio_pool.config import Config
from trio_pool.credentials.gemini_setup import run_setup
from trio_pool.errors import CredentialsError, LoginError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers import gemini_setup as steps
from trio_pool.providers.base import AccountAction
from trio_pool.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

SUPPORTED = "Code Assist serves Gemini Code Assist Standard and Enterprise licences only"


async def check_gemini_login(
    config: Config, client: UpstreamClient, document: Mapping[str, Any]
) -> str | None:
    """Raise LoginError when the account can never serve; else a warning to show, or None."""
    try:
        credentials = PROVIDER_REGISTRY["gemini"].parse_credentials(document)
    except CredentialsError as exc:
        raise LoginError(f"the login is not usable: {exc}") from None
    result = await run_setup(client, credentials, {"gemini": attrs.asdict(config.gemini)})
    if isinstance(result, steps.Failed):
        log.warning("login.gemini.unchecked reason=%s", result.reason)
        return f"could not check the account with Code Assist ({result.reason}); the proxy will"
    if not isinstance(result, AccountAction):
        return None
    if result.kind == "project_required":
        return f"this account needs a project before it can serve: {result.message}"
    text = f"Code Assist refuses this Google account ({result.kind}): {result.message}"
    if result.link:
        text += f"; open {result.link}"
    if result.kind == "ineligible":
        text += f". {SUPPORTED}; individual accounts (free, AI Pro, AI Ultra) no longer work"
    raise LoginError(text)
