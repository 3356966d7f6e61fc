"""The Setup page in real headless Chromium: the set-ups that run on another provider's
accounts (Claude Code on Codex accounts, Chat Completions clients), followed as shown."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import anthropic
import openai
import pytest

from tests.dashboard.browser_helpers import (
    WAIT_MS,
    DashboardServer,
    join,
    open_route,
    served,
    shoot,
    tid,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.dashboard.conftest import NewPage

pytestmark = pytest.mark.browser


def snippets(page: Page, client: str) -> list[str]:
    """The texts of one client's steps, as the page shows them."""
    section = page.locator(f'section[data-client="{client}"]')
    return section.locator(tid("setup-snippet")).all_inner_texts()


def settings(lines: str) -> dict[str, str]:
    """``NAME=value`` lines of an env snippet (comments skipped)."""
    found = {}
    for line in lines.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            found[name.strip()] = value.strip()
    return found


def codex_generations(dash: DashboardServer) -> int:
    return sum(n for account, n in dash.call(served, dash.state).items() if "codex/" in account)


def test_setup_page_shows_claude_code_on_codex_and_chat_clients_that_work(
    dash: DashboardServer, new_page: NewPage
) -> None:
    """A friend's Setup page, filled with a new key, shows `setup claude --on codex` with
    the model lines and the Chat Completions settings; both, followed as written, get an
    answer from the pool's Codex accounts."""
    _key, cookie = join(dash.base_url, "setup-friend")
    page = new_page(cookie=cookie)
    open_route(page, dash.base_url, "setup", "setup-snippet")
    page.click(tid("setup-new-key"))
    page.get_by_text("Filled in with your key").wait_for(timeout=WAIT_MS)
    shoot(page, "desktop-setup-translated")

    claude = snippets(page, "claude")
    assert not any("{{KEY}}" in text for text in claude + snippets(page, "chat"))
    (command,) = [text for text in claude if "--on codex" in text]
    assert command.startswith(f"trio-pool setup claude --write --server {dash.base_url}")
    on_codex = [json.loads(t) for t in claude if '"ANTHROPIC_MODEL"' in t]
    assert len(on_codex) == 1
    env = on_codex[0]["env"]
    assert env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == env["ANTHROPIC_SMALL_FAST_MODEL"]
    key = env["CLAUDE_CODE_OAUTH_TOKEN"]
    assert f"--key {key}" in command

    chat_command, chat_text, *_ = snippets(page, "chat")
    assert chat_command == f"trio-pool setup chat --server {dash.base_url} --key {key}"
    chat = settings(chat_text)
    assert chat["OPENAI_BASE_URL"] == f"{dash.base_url}/v1"
    assert chat["OPENAI_API_KEY"] == key
    model = chat_text.split("# model: ", 1)[1].split()[0]

    # Followed as written: both reach a Codex account, though neither CLI speaks its API.
    before = codex_generations(dash)
    with anthropic.Anthropic(
        base_url=env["ANTHROPIC_BASE_URL"], auth_token=key, max_retries=0, timeout=10.0
    ) as client:
        reply = client.messages.create(
            model=env["ANTHROPIC_MODEL"],
            max_tokens=32,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert reply.model == env["ANTHROPIC_MODEL"]
    assert reply.content[0].type == "text"
    with openai.OpenAI(
        base_url=chat["OPENAI_BASE_URL"], api_key=key, max_retries=0, timeout=10.0
    ) as chat_client:
        completion = chat_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    assert completion.choices[0].message.content
    assert codex_generations(dash) == before + 2
