"""Running a provider's login: the browser flow with a loopback redirect, Codex's device-code
flow, and the code-paste variants of Claude and Gemini for machines without a browser.

Every URL comes from the config, so tests run the whole flow against ``trio_pool.testing``.
The user interface (messages, opening a browser, reading a pasted code) is injected: the CLI
prints and calls ``webbrowser.open``; tests play the browser themselves.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import attrs
import trio

from trio_pool import clock
from trio_pool.config import Config
from trio_pool.errors import CredentialsError, LoginError, UpstreamError
from trio_pool.login.callback import Callback, serve_callback
from trio_pool.login.gemini_check import check_gemini_login
from trio_pool.login.oauth import (
    CLAUDE_PROFILE_USER_AGENT,
    CODEX_JSON_HEADERS,
    TokenCall,
    apply_claude_profile,
    authorize_url,
    exchange_call,
    login_document,
    split_pasted_code,
    token_answer,
)
from trio_pool.login.pkce import new_pkce, new_state
from trio_pool.providers import PROVIDER_REGISTRY, codex_account
from trio_pool.providers.base import ProviderName
from trio_pool.providers.wire import as_float, as_str, dig, json_object
from trio_pool.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

LABELS = {"codex": "ChatGPT (Codex)", "claude": "Claude.ai", "gemini": "Google (Gemini)"}
CALLBACK_PATHS = {"codex": "/auth/callback", "claude": "/callback", "gemini": "/oauth2callback"}
MIN_POLL_S = 0.1


@attrs.frozen
class LoginUI:
    """How a login talks to the user."""

    notify: Callable[[str], None]
    read_code: Callable[[str], Awaitable[str]]  # prompt -> what the user pasted
    open_browser: Callable[[str], object] | None = None  # None: only show the URL


@attrs.frozen
class LoginOptions:
    no_browser: bool = False
    timeout_s: float = 300.0  # the Gemini CLI gives the browser 5 minutes
    device_timeout_s: float = 900.0  # Codex device codes live 15 minutes
    codex_ports: tuple[int, ...] = (1455, 1457)  # the ports Codex's client id allows
    callback_host: str = "127.0.0.1"


@attrs.frozen
class LoginResult:
    provider: ProviderName
    document: dict[str, Any] = attrs.field(repr=False)  # the CLI's credential file
    email: str | None


async def run_login(
    provider: ProviderName,
    config: Config,
    client: UpstreamClient,
    ui: LoginUI,
    options: LoginOptions = LoginOptions(),
) -> LoginResult:
    """Log in with the provider's own OAuth flow; raises LoginError with one clear line."""
    device = provider == "codex" and options.no_browser
    limit = options.device_timeout_s if device else options.timeout_s
    try:
        with trio.fail_after(limit):
            if device:
                answer = await _codex_device(config, client, ui)
            elif options.no_browser:
                answer = await _paste(provider, config, client, ui)
            else:
                answer = await _browser(provider, config, client, ui, options)
    except trio.TooSlowError:
        hint = "" if options.no_browser else " (no browser here? use --no-browser)"
        raise LoginError(f"the login did not finish within {limit:.0f} s{hint}") from None
    document = login_document(provider, answer, clock.now())
    if provider == "claude":
        await _claude_profile(config, client, document)
    try:
        credentials = PROVIDER_REGISTRY[provider].parse_credentials(document)
    except CredentialsError as exc:
        raise LoginError(f"the new login is not usable: {exc}") from None
    email = credentials.email or as_str(dig(document, "oauthAccount", "emailAddress"))
    if provider == "gemini" and email is None:
        email = await _google_email(config, client, credentials.access_token)
    if provider == "gemini":
        # An account Code Assist refuses is not written to the pool (LoginError).
        warning = await check_gemini_login(config, client, document)
        if warning is not None:
            ui.notify(f"warning: {warning}")
    log.info("login.ok provider=%s", provider)
    return LoginResult(provider, document, email)


async def _post(client: UpstreamClient, call: TokenCall, what: str) -> tuple[int, bytes]:
    try:
        status, _headers, body = await client.request(
            "POST", call.url, list(call.headers), call.body
        )
    except UpstreamError as exc:
        raise LoginError(f"cannot reach the {what}: {exc}") from None
    return status, body


async def _exchange(
    provider: ProviderName,
    config: Config,
    client: UpstreamClient,
    *,
    code: str,
    redirect_uri: str,
    verifier: str | None,
    state: str | None = None,
) -> dict[str, Any]:
    call = exchange_call(
        provider, config, code=code, redirect_uri=redirect_uri, verifier=verifier, state=state
    )
    return token_answer(*await _post(client, call, "token endpoint"))


async def _browser(
    provider: ProviderName,
    config: Config,
    client: UpstreamClient,
    ui: LoginUI,
    options: LoginOptions,
) -> dict[str, Any]:
    # The Gemini CLI's browser branch sends no PKCE (protocols.md §3.5); the others do.
    pkce = None if provider == "gemini" else new_pkce()
    state = new_state(hex_form=provider == "gemini")
    path = CALLBACK_PATHS[provider]
    callback = Callback(path, state)
    ports = options.codex_ports if provider == "codex" else (0,)
    # Codex's and Claude's client ids allow localhost; Google's the loopback literal.
    host = "127.0.0.1" if provider == "gemini" else "localhost"

    def redirect_for(port: int) -> str:
        return f"http://{host}:{port}{path}"

    async def start_and_wait(nursery: trio.Nursery) -> str:
        port = await nursery.start(
            partial(serve_callback, callback, ports, host=options.callback_host)
        )
        url = authorize_url(
            provider, config, redirect_uri=redirect_for(port), state=state, pkce=pkce
        )
        ui.notify(
            f"Log in to {LABELS[provider]} in the browser. If no browser opens, visit:\n\n  {url}\n"
        )
        if ui.open_browser is not None:
            ui.open_browser(url)
        return await callback.wait()

    failure: LoginError | None = None
    async with trio.open_nursery() as nursery:
        # Kept, not raised here: an error raised in a nursery's body comes out wrapped.
        try:
            code = await start_and_wait(nursery)
        except LoginError as exc:
            failure = exc
        nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return await _exchange(
        provider,
        config,
        client,
        code=code,
        redirect_uri=redirect_for(callback.port),
        verifier=pkce.verifier if pkce else None,
        state=state,
    )


async def _paste(
    provider: ProviderName, config: Config, client: UpstreamClient, ui: LoginUI
) -> dict[str, Any]:
    """Claude's and Gemini's manual variant: the provider's page shows a code to paste."""
    pkce = new_pkce()
    state = new_state(hex_form=provider == "gemini")
    redirect_uri = (
        config.claude.manual_redirect_url
        if provider == "claude"
        else config.gemini.manual_redirect_url
    )
    url = authorize_url(provider, config, redirect_uri=redirect_uri, state=state, pkce=pkce)
    shown = "code#state string" if provider == "claude" else "authorization code"
    ui.notify(
        f"Open this URL in any browser, log in to {LABELS[provider]}, "
        f"then paste the {shown} it shows:\n\n  {url}\n"
    )
    code = split_pasted_code(provider, await ui.read_code("Code: "), state)
    return await _exchange(
        provider,
        config,
        client,
        code=code,
        redirect_uri=redirect_uri,
        verifier=pkce.verifier,
        state=state,
    )


async def _codex_device(config: Config, client: UpstreamClient, ui: LoginUI) -> dict[str, Any]:
    """``codex login --device-auth``: show a user code, poll until it is approved."""
    base = config.codex.device_url.rstrip("/")
    start = TokenCall(
        f"{base}/usercode",
        CODEX_JSON_HEADERS,
        json.dumps({"client_id": codex_account.CLIENT_ID}).encode(),
    )
    answer = token_answer(
        *await _post(client, start, "device-code endpoint"), "device-code endpoint"
    )
    device_auth_id = as_str(answer.get("device_auth_id"))
    user_code = as_str(answer.get("user_code")) or as_str(answer.get("usercode"))
    if device_auth_id is None or user_code is None:
        raise LoginError("the device-code endpoint answered without a user code")
    interval = as_float(answer.get("interval"))
    interval = max(interval if interval is not None else 5.0, MIN_POLL_S)
    issuer = config.codex.issuer.rstrip("/")
    ui.notify(
        f"On any device, open {issuer}/codex/device and enter this code:\n\n"
        f"  {user_code}\n\nWaiting for the approval (the code expires in 15 minutes)..."
    )
    poll = TokenCall(
        f"{base}/token",
        CODEX_JSON_HEADERS,
        json.dumps({"device_auth_id": device_auth_id, "user_code": user_code}).encode(),
    )
    while True:
        await trio.sleep(interval)
        status, body = await _post(client, poll, "device-code endpoint")
        if status in (403, 404):  # not approved yet
            continue
        granted = token_answer(status, body, "device-code endpoint")
        code = as_str(granted.get("authorization_code"))
        verifier = as_str(granted.get("code_verifier"))
        if code is None or verifier is None:
            raise LoginError("the device-code endpoint answered without an authorization code")
        return await _exchange(
            "codex",
            config,
            client,
            code=code,
            redirect_uri=f"{issuer}/deviceauth/callback",
            verifier=verifier,
        )


async def _claude_profile(config: Config, client: UpstreamClient, document: dict[str, Any]) -> None:
    """The plan comes from the profile, not the token (best effort, as in Claude Code)."""
    access = document["claudeAiOauth"]["accessToken"]
    headers = [
        ("authorization", f"Bearer {access}"),
        ("anthropic-beta", "oauth-2025-04-20"),
        ("accept", "application/json"),
        CLAUDE_PROFILE_USER_AGENT,
    ]
    try:
        status, _h, body = await client.request("GET", config.claude.profile_url, headers)
    except UpstreamError as exc:
        log.info("login.claude.profile_unavailable reason=%s", exc)
        return
    profile = json_object(body)
    if status == 200 and profile is not None:
        apply_claude_profile(document, profile)
    else:
        log.info("login.claude.profile_unavailable status=%d", status)


async def _google_email(config: Config, client: UpstreamClient, access: str) -> str | None:
    """No id_token in the answer: ask userinfo, like the Gemini CLI does."""
    headers = [("authorization", f"Bearer {access}"), ("accept", "application/json")]
    try:
        status, _h, body = await client.request("GET", config.gemini.userinfo_url, headers)
    except UpstreamError:
        return None
    return as_str(dig(json_object(body), "email")) if status == 200 else None
