"""Simulated login endpoints: the three providers' authorize pages, Codex's device-code
endpoints, Claude's and Google's manual code pages, Claude's profile and Google's userinfo.

The authorize pages answer at once, as a user who clicks "Allow" would: a 302 to the
``redirect_uri`` with ``code`` and ``state`` (or with ``error=`` when the test scripted a
denial). Codes are redeemed at the simulated token endpoints (``tokens.py``). A test plays
the browser by GETting the authorize URL and following the redirect.
"""

from __future__ import annotations

import html
import secrets
import weakref
from collections import deque
from urllib.parse import parse_qsl, urlencode

import attrs

from trio_pool.server.connection import Exchange
from trio_pool.testing import issue, wire
from trio_pool.testing.accounts import Provider
from trio_pool.testing.state import SimState

AUTHORIZE_PATHS: dict[str, Provider] = {
    "/oauth/authorize": "codex",
    "/cai/oauth/authorize": "claude",
    "/o/oauth2/v2/auth": "gemini",
}
CLIENT_IDS: dict[Provider, str] = {
    "codex": issue.CODEX_CLIENT_ID,
    "claude": issue.CLAUDE_CLIENT_ID,
    "gemini": issue.GEMINI_CLIENT_ID,
}
DEVICE_PREFIX = "/api/accounts/deviceauth/"
PATHS = frozenset(
    {
        *AUTHORIZE_PATHS,
        DEVICE_PREFIX + "usercode",
        DEVICE_PREFIX + "token",
        "/oauth/code/callback",
        "/authcode",
        "/api/oauth/profile",
        "/oauth2/v2/userinfo",
    }
)


@attrs.frozen
class Approve:
    key: str  # "codex/alice": the simulated account that logs in


@attrs.frozen
class Deny:
    error: str = "access_denied"
    description: str = ""


@attrs.define(eq=False)
class _Device:
    user_code: str
    polls: int = 0


@attrs.define(eq=False)
class LoginScript:
    """What the next logins of one simulator do; by default the provider's first account
    approves."""

    outcomes: dict[str, deque[Approve | Deny]] = attrs.field(factory=dict)
    device_interval: str = "0"
    device_pending_polls: int = 1  # "authorization_pending" answers before the approval
    authorize_requests: list[dict[str, str]] = attrs.field(factory=list)
    _devices: dict[str, _Device] = attrs.field(factory=dict)

    def push(self, provider: Provider, *outcomes: Approve | Deny) -> None:
        self.outcomes.setdefault(provider, deque()).extend(outcomes)

    def next(self, state: SimState, provider: Provider) -> Approve | Deny:
        queue = self.outcomes.get(provider)
        if queue:
            return queue.popleft()
        accounts = state.of(provider)
        return Approve(accounts[0].key) if accounts else Deny("access_denied", "no account")


_SCRIPTS: weakref.WeakKeyDictionary[SimState, LoginScript] = weakref.WeakKeyDictionary()


def script_for(state: SimState) -> LoginScript:
    if state not in _SCRIPTS:
        _SCRIPTS[state] = LoginScript()
    return _SCRIPTS[state]


def login_urls(base: str) -> dict[str, dict[str, str]]:
    """Config values pointing the logins at a simulator at ``base`` (beside ``urls``)."""
    base = base.rstrip("/")
    return {
        "codex": {
            "issuer": base,
            "authorize_url": f"{base}/oauth/authorize",
            "device_url": f"{base}/api/accounts/deviceauth",
        },
        "claude": {
            "authorize_url": f"{base}/cai/oauth/authorize",
            "manual_redirect_url": f"{base}/oauth/code/callback",
            "profile_url": f"{base}/api/oauth/profile",
        },
        "gemini": {
            "authorize_url": f"{base}/o/oauth2/v2/auth",
            "manual_redirect_url": f"{base}/authcode",
            "userinfo_url": f"{base}/oauth2/v2/userinfo",
        },
    }


async def handle(state: SimState, ex: Exchange) -> None:
    path = ex.head.path
    if path in AUTHORIZE_PATHS:
        await _authorize(state, ex, AUTHORIZE_PATHS[path])
    elif path.startswith(DEVICE_PREFIX):
        await _device(state, ex, path.removeprefix(DEVICE_PREFIX))
    elif path in ("/oauth/code/callback", "/authcode"):
        params = dict(parse_qsl(ex.head.query))
        code = params.get("code", "")
        # Claude's page shows code#state; Google's the code alone.
        shown = f"{code}#{params.get('state', '')}" if path == "/oauth/code/callback" else code
        page = (
            f'<p>Paste this code into your terminal:</p><code id="code">{html.escape(shown)}</code>'
        )
        await ex.respond(200, [("content-type", "text/html")], page.encode())
    elif path == "/api/oauth/profile":
        account = state.by_access("claude", wire.bearer(ex.head))
        if account is None:
            await wire.respond_json(
                ex, 401, {"type": "error", "error": {"type": "authentication_error"}}
            )
            return
        profile = {
            "account": {"uuid": account.account_id, "email": account.email},
            "organization": {
                "organization_type": f"claude_{account.plan}",
                "rate_limit_tier": f"default_claude_{account.plan}",
            },
        }
        await wire.respond_json(ex, 200, profile)
    else:  # userinfo
        account = state.by_access("gemini", wire.bearer(ex.head))
        if account is None:
            await wire.respond_json(ex, 401, {"error": "invalid_token"})
            return
        await wire.respond_json(ex, 200, {"email": account.email, "verified_email": True})


async def _authorize(state: SimState, ex: Exchange, provider: Provider) -> None:
    params = dict(parse_qsl(ex.head.query, keep_blank_values=True))
    script = script_for(state)
    script.authorize_requests.append(params)
    problems = []
    if params.get("client_id") != CLIENT_IDS[provider]:
        problems.append("unknown client_id")
    if params.get("response_type") != "code":
        problems.append("response_type must be code")
    if not params.get("redirect_uri") or not params.get("state"):
        problems.append("redirect_uri and state are required")
    # Codex and Claude require PKCE; Google accepts logins with or without it.
    pkce = params.get("code_challenge_method") == "S256" and params.get("code_challenge")
    if provider != "gemini" and not pkce:
        problems.append("PKCE (S256) is required")
    if problems:
        body = "; ".join(problems).encode()
        await ex.respond(400, [("content-type", "text/plain")], body)
        return
    outcome = script.next(state, provider)
    reply = {"state": params["state"]}
    if isinstance(outcome, Approve):
        reply["code"] = state.new_login_code(outcome.key)
    else:
        reply["error"] = outcome.error
        if outcome.description:
            reply["error_description"] = outcome.description
    redirect = params["redirect_uri"]
    location = f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(reply)}"
    await ex.respond(302, [("location", location), ("content-type", "text/plain")], b"")


async def _device(state: SimState, ex: Exchange, step: str) -> None:
    request = wire.parse_json(await wire.read_body(ex))
    script = script_for(state)
    if step == "usercode":
        if request.get("client_id") != issue.CODEX_CLIENT_ID:
            await wire.respond_json(ex, 400, {"error": "invalid_client"})
            return
        device_id = f"deviceauth_{secrets.token_hex(8)}"
        user_code = f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"
        script._devices[device_id] = _Device(user_code)
        answer = {
            "device_auth_id": device_id,
            "user_code": user_code,
            "interval": script.device_interval,
        }
        await wire.respond_json(ex, 200, answer)
        return
    device = script._devices.get(str(request.get("device_auth_id")))
    if device is None or request.get("user_code") != device.user_code:
        await wire.respond_json(ex, 400, {"error": "invalid_request"})
        return
    device.polls += 1
    if device.polls <= script.device_pending_polls:
        await wire.respond_json(ex, 403, {"error": "authorization_pending"})
        return
    del script._devices[str(request.get("device_auth_id"))]
    outcome = script.next(state, "codex")
    if isinstance(outcome, Deny):
        await wire.respond_json(ex, 400, {"error": outcome.error})
        return
    verifier = secrets.token_urlsafe(32)
    answer = {
        "authorization_code": state.new_login_code(outcome.key),
        "code_challenge": "sim",
        "code_verifier": verifier,
    }
    await wire.respond_json(ex, 200, answer)
