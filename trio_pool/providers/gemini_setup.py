"""Code Assist set-up of one Gemini account, as the Gemini CLI does it (setup.ts _doSetupUser).

``loadCodeAssist`` (carrying the account's own project, if it has one) says which tier the
account is on and which project to bill. With no ``currentTier`` the account is onboarded:
``onboardUser`` for the default allowed tier, then a long-running operation polled until
done. Pure: the calls are built here and their answers read into decisions; the shell
(``credentials.gemini_setup``) sends them.

Since 2026-06-18 Code Assist refuses individual Google accounts (free, AI Pro, AI Ultra):
``loadCodeAssist`` answers with no ``currentTier`` and ``ineligibleTiers`` such as
``UNSUPPORTED_CLIENT``. Such an account can never serve: it gets the needs-action state
``ineligible`` with the server's own ``reasonMessage``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from trio_pool.providers.base import AccountAction, Credentials, PreparedRequest
from trio_pool.providers.gemini_account import CLIENT_METADATA, project_of
from trio_pool.providers.identity import gemini_user_agent
from trio_pool.providers.wire import as_str, dig, join_url, json_object

FREE_TIER = "free-tier"
LEGACY_TIER = "legacy-tier"
PROJECT_HELP = (
    'this account\'s tier needs a Google Cloud project: add "project_id": "<project id>" '
    "to its pool file, or set [gemini] project in config.toml"
)
VALIDATION_REASON = "VALIDATION_REQUIRED"


@attrs.frozen
class Ready:
    """The account can serve: bodies carry ``project``."""

    project: str
    tier: str | None = None


@attrs.frozen
class Onboard:
    """No current tier: onboard the account to ``tier`` (then poll the operation)."""

    tier: str
    ineligible: tuple[Mapping[str, Any], ...] = ()  # kept for the final verdict


@attrs.frozen
class Pending:
    """An onboarding operation still running: poll ``name`` again."""

    name: str


@attrs.frozen
class Failed:
    """The look-up itself failed (network, 5xx, bad JSON): try again later."""

    reason: str


Step = Ready | Onboard | Pending | AccountAction | Failed


def _headers(credentials: Credentials) -> tuple[tuple[str, str], ...]:
    return (
        ("authorization", f"Bearer {credentials.access_token}"),
        ("content-type", "application/json"),
        ("accept", "application/json"),
        ("user-agent", gemini_user_agent()),
    )


def _metadata(project: str | None) -> dict[str, Any]:
    return {**CLIENT_METADATA, "duetProject": project} if project else dict(CLIENT_METADATA)


def load_request(
    credentials: Credentials, upstreams: Mapping[str, str], project: str | None
) -> PreparedRequest:
    """``loadCodeAssist`` with the account's project, as the CLI sends GOOGLE_CLOUD_PROJECT."""
    body: dict[str, Any] = {"metadata": _metadata(project)}
    if project:
        body["cloudaicompanionProject"] = project
    url = join_url(upstreams["upstream"], "/v1internal:loadCodeAssist")
    return PreparedRequest("POST", url, _headers(credentials), json.dumps(body).encode())


def onboard_request(
    credentials: Credentials, upstreams: Mapping[str, str], tier: str, project: str | None
) -> PreparedRequest:
    """``onboardUser``; the free tier uses a managed project and refuses one (setup.ts)."""
    body: dict[str, Any] = {"tierId": tier, "metadata": _metadata(None)}
    if tier != FREE_TIER and project:
        body["cloudaicompanionProject"] = project
        body["metadata"] = _metadata(project)
    url = join_url(upstreams["upstream"], "/v1internal:onboardUser")
    return PreparedRequest("POST", url, _headers(credentials), json.dumps(body).encode())


def operation_request(
    credentials: Credentials, upstreams: Mapping[str, str], name: str
) -> PreparedRequest:
    url = join_url(upstreams["upstream"], f"/v1internal/{name}")
    return PreparedRequest("GET", url, _headers(credentials), b"")


def _answer(status: int, body: bytes, what: str) -> dict[str, Any] | Failed:
    if not 200 <= status < 300:
        message = as_str(dig(json_object(body), "error", "message")) or f"HTTP {status}"
        return Failed(f"{what} answered {status}: {message}")
    payload = json_object(body)
    return payload if payload is not None else Failed(f"{what} answered no JSON object")


def _ineligible(tiers: tuple[Mapping[str, Any], ...]) -> AccountAction | None:
    """The account's refusal reasons, in Google's own words (IneligibleTierError)."""
    messages = [as_str(t.get("reasonMessage")) or as_str(t.get("reasonCode")) for t in tiers]
    text = ", ".join(m for m in messages if m)
    return AccountAction("ineligible", text) if text else None


def _no_project(tiers: tuple[Mapping[str, Any], ...]) -> AccountAction:
    """setup.ts throwIneligibleOrProjectIdError: ineligibility reasons first, if any."""
    return _ineligible(tiers) or AccountAction("project_required", PROJECT_HELP)


def read_load(status: int, body: bytes, project: str | None) -> Step:
    """What a ``loadCodeAssist`` answer means for an account whose own project is ``project``."""
    payload = _answer(status, body, "loadCodeAssist")
    if isinstance(payload, Failed):
        return payload
    listed = payload.get("ineligibleTiers")
    tiers = tuple(t for t in listed if isinstance(t, dict)) if isinstance(listed, list) else ()
    current = payload.get("currentTier")
    if not isinstance(current, dict):
        for tier in tiers:
            # The CLI's validateLoadCodeAssistResponse: verification comes before anything.
            link = as_str(tier.get("validationUrl"))
            if tier.get("reasonCode") == VALIDATION_REASON and link:
                message = as_str(tier.get("reasonMessage")) or "Google asks to verify this account"
                return AccountAction("validation_required", message, link)
        default = _default_tier(payload.get("allowedTiers"))
        if default is None and tiers:
            # Nothing it may be onboarded to, and reasons why: UNSUPPORTED_CLIENT and co.
            return _no_project(tiers)
        return Onboard(default or LEGACY_TIER, tiers)
    found = project_of(payload.get("cloudaicompanionProject")) or project
    if not found:
        return _no_project(tiers)
    tier_id = as_str(dig(payload, "paidTier", "id")) or as_str(current.get("id"))
    return Ready(found, tier_id)


def _default_tier(allowed: Any) -> str | None:
    for tier in allowed if isinstance(allowed, list) else ():
        if isinstance(tier, dict) and tier.get("isDefault") is True:
            return as_str(tier.get("id")) or LEGACY_TIER
    return None


def read_operation(status: int, body: bytes, project: str | None, onboard: Onboard) -> Step:
    """An ``onboardUser`` answer or an operation poll: done with a project, or still running."""
    payload = _answer(status, body, "onboardUser")
    if isinstance(payload, Failed):
        return payload
    if payload.get("done") is not True:
        name = as_str(payload.get("name"))
        return Pending(name) if name else Failed("onboardUser gave no operation to poll")
    found = project_of(dig(payload, "response", "cloudaicompanionProject")) or project
    return Ready(found, onboard.tier) if found else _no_project(onboard.ineligible)
