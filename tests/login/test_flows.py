"""Each provider's login end to end against the simulated authorize and token endpoints."""

from __future__ import annotations

import base64
import hashlib
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.login.helpers import browser_ui, paste_ui, start_sim
from trio_pool.errors import LoginError
from trio_pool.login.flows import LoginOptions, LoginUI, run_login
from trio_pool.login.pkce import challenge_of, new_pkce
from trio_pool.login.pooldir import add_account
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import ProviderName
from trio_pool.testing.oauth import Approve, Deny, script_for
from trio_pool.upstream.client import UpstreamClient

FREE = LoginOptions(codex_ports=(0,), timeout_s=20.0)


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    client = UpstreamClient()
    yield client
    await client.aclose()


def test_pkce_challenge_is_s256_of_the_verifier() -> None:
    """The challenge is base64url(sha256(verifier)) without padding (RFC 7636 S256)."""
    digest = hashlib.sha256(b"verifier").digest()
    assert challenge_of("verifier") == base64.urlsafe_b64encode(digest).decode().rstrip("=")
    pkce = new_pkce()
    assert pkce.challenge == challenge_of(pkce.verifier)
    assert pkce.verifier not in repr(pkce)


@pytest.mark.parametrize("provider", ["codex", "claude", "gemini"])
async def test_browser_login_end_to_end(
    provider: ProviderName, nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """The browser flow yields the CLI's own credential file for the approving account."""
    sim = await start_sim(nursery, tmp_path)
    script_for(sim.state).push(provider, Approve(f"{provider}/bob"))
    ui, messages = browser_ui(nursery)
    with trio.fail_after(20):
        result = await run_login(provider, sim.config, client, ui, FREE)
    assert result.email == "bob@example.com"
    credentials = PROVIDER_REGISTRY[provider].parse_credentials(result.document)
    assert credentials.access_token == sim.state.account(f"{provider}/bob").access_token
    request = script_for(sim.state).authorize_requests[-1]
    assert request["state"] in messages[0]
    # PKCE everywhere except the Gemini CLI's browser branch (protocols.md §3.5).
    assert ("code_challenge" in request) == (provider != "gemini")
    redirect = urllib.parse.urlsplit(request["redirect_uri"])
    expected = {"codex": "/auth/callback", "claude": "/callback", "gemini": "/oauth2callback"}
    assert redirect.path == expected[provider]
    assert redirect.hostname == ("127.0.0.1" if provider == "gemini" else "localhost")
    if provider == "claude":
        assert result.document["claudeAiOauth"]["subscriptionType"] == "max"


async def test_codex_device_code_login(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """--no-browser for Codex shows a user code, polls past 'pending' and exchanges the code."""
    sim = await start_sim(nursery, tmp_path)
    script_for(sim.state).device_pending_polls = 2
    messages: list[str] = []

    async def no_paste(prompt: str) -> str:
        raise AssertionError("device flow asked for a paste")

    ui = LoginUI(notify=messages.append, read_code=no_paste)
    with trio.fail_after(20):
        result = await run_login(
            "codex", sim.config, client, ui, LoginOptions(no_browser=True, timeout_s=20)
        )
    assert result.email == "alice@example.com"
    assert f"{sim.base}/codex/device" in messages[0]


@pytest.mark.parametrize("provider", ["claude", "gemini"])
async def test_code_paste_login(
    provider: ProviderName, nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """The headless variants read the pasted code (Claude's code#state) and use PKCE."""
    sim = await start_sim(nursery, tmp_path)
    ui, _messages = paste_ui()
    with trio.fail_after(20):
        result = await run_login(
            provider, sim.config, client, ui, LoginOptions(no_browser=True, timeout_s=20)
        )
    assert result.email == "alice@example.com"
    request = script_for(sim.state).authorize_requests[-1]
    assert request["code_challenge_method"] == "S256"
    assert request["redirect_uri"].startswith(sim.base)


async def test_state_mismatch_is_refused(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """A redirect whose state differs from ours ends the login with a state-mismatch error."""
    sim = await start_sim(nursery, tmp_path)
    ui, _ = browser_ui(nursery, tamper=lambda url: url.replace("state=", "state=x"))
    with trio.fail_after(20), pytest.raises(LoginError, match="state mismatch"):
        await run_login("claude", sim.config, client, ui, FREE)


async def test_pasted_code_of_another_login_is_refused(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """Claude's pasted code#state must carry this login's state."""
    sim = await start_sim(nursery, tmp_path)

    async def read_code(prompt: str) -> str:
        return "some-code#another-state"

    ui = LoginUI(notify=lambda m: None, read_code=read_code)
    with trio.fail_after(20), pytest.raises(LoginError, match="state mismatch"):
        await run_login("claude", sim.config, client, ui, LoginOptions(no_browser=True))


@pytest.mark.parametrize(
    ("deny", "message"),
    [
        (Deny("access_denied", "The user declined."), "denied in the browser"),
        (Deny("access_denied", "missing_codex_entitlement"), "no Codex access"),
    ],
)
async def test_denied_login_is_one_clear_error(
    deny: Deny, message: str, nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """error=access_denied redirects become one line, naming a missing Codex entitlement."""
    sim = await start_sim(nursery, tmp_path)
    script_for(sim.state).push("codex", deny)
    ui, _ = browser_ui(nursery)
    with trio.fail_after(20), pytest.raises(LoginError, match=message) as caught:
        await run_login("codex", sim.config, client, ui, FREE)
    assert "\n" not in str(caught.value)


async def test_login_times_out_clearly(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """Nobody completes the login: a timeout error that suggests --no-browser."""
    sim = await start_sim(nursery, tmp_path)

    async def never(prompt: str) -> str:
        await trio.sleep_forever()

    ui = LoginUI(notify=lambda m: None, read_code=never)
    with (
        trio.fail_after(20),
        pytest.raises(LoginError, match=r"did not finish within.*--no-browser"),
    ):
        await run_login("gemini", sim.config, client, ui, LoginOptions(timeout_s=0.3))


async def test_codex_callback_falls_back_to_the_second_port(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """When the first port (1455) is taken, the callback listens on the next (1457)."""
    sim = await start_sim(nursery, tmp_path)
    busy = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    busy_port = busy.socket.getsockname()[1]
    ui, _ = browser_ui(nursery)
    options = LoginOptions(codex_ports=(busy_port, 0), timeout_s=20)
    with trio.fail_after(20):
        await run_login("codex", sim.config, client, ui, options)
    redirect = script_for(sim.state).authorize_requests[-1]["redirect_uri"]
    assert f":{busy_port}/" not in redirect
    await busy.aclose()


async def test_new_login_goes_into_the_pool_once(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """The login is written as pool/<provider>/<email>.json (0600); a second copy is refused."""
    sim = await start_sim(nursery, tmp_path)
    ui, _ = browser_ui(nursery)
    with trio.fail_after(20):
        result = await run_login("codex", sim.config, client, ui, FREE)
    name, path, replaced = add_account(sim.config.pool_dir, "codex", result.document)
    assert (name, replaced) == ("codex/alice@example.com", False)
    assert path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(LoginError, match=r"already in the pool as codex/alice@example\.com"):
        add_account(sim.config.pool_dir, "codex", result.document, "other")
    # The same account under its own name is a re-login: allowed.
    assert add_account(sim.config.pool_dir, "codex", result.document)[2] is True


async def test_a_google_account_code_assist_refuses_is_not_logged_in(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """accounts login gemini with an individual (free-tier) account: a LoginError that says
    why in Google's words and which licences work; nothing reaches the pool."""
    sim = await start_sim(nursery, tmp_path)
    sim.state.account("gemini/bob").plan = "free-tier"
    script_for(sim.state).push("gemini", Approve("gemini/bob"))
    ui, _messages = browser_ui(nursery)
    with (
        trio.fail_after(20),
        pytest.raises(
            LoginError, match=r"ineligible.*no longer available.*Standard and Enterprise"
        ),
    ):
        await run_login("gemini", sim.config, client, ui, FREE)
    assert not (sim.config.pool_dir / "gemini").exists()


async def test_a_standard_login_without_a_project_is_kept_with_a_warning(
    nursery: trio.Nursery, tmp_path: Path, client: UpstreamClient
) -> None:
    """A Standard account's login succeeds; the user is told to name its project."""
    sim = await start_sim(nursery, tmp_path)
    ui, messages = paste_ui()
    with trio.fail_after(20):
        result = await run_login(
            "gemini", sim.config, client, ui, LoginOptions(no_browser=True, timeout_s=20)
        )
    assert result.email == "alice@example.com"
    assert any("project_id" in m for m in messages)
