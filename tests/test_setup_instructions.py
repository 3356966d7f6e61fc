"""The SETUP document: one-liners and manual snippets for each CLI, filled in or templated."""

from __future__ import annotations

import json
import tomllib

from trio_pool.setup.instructions import PLACEHOLDER, instructions

ADDRESS = "http://192.168.1.20:8989"
KEY = "tp-" + "a" * 36 + "Q9_-"


def _steps(document: dict[str, object], client: str) -> list[dict[str, str]]:
    clients = document["clients"]
    assert isinstance(clients, list)
    (found,) = [c for c in clients if c["client"] == client]
    steps: list[dict[str, str]] = found["steps"]
    return steps


def test_document_shape_follows_the_contract() -> None:
    """address, then codex/claude/gemini, each with a title and labelled steps of known kinds."""
    document = instructions(ADDRESS + "/", KEY)
    assert document["address"] == ADDRESS
    assert [c["client"] for c in document["clients"]] == ["codex", "claude", "gemini", "chat"]
    for client in document["clients"]:
        assert client["title"]
        for step in client["steps"]:
            assert set(step) == {"label", "kind", "text"}
            assert step["kind"] in {"shell", "toml", "json", "env", "text"}
    json.dumps(document)  # plain JSON all the way down


def test_one_liner_carries_address_and_key() -> None:
    """The first step of each client is the `trio-pool setup` line with --server and --key."""
    document = instructions(ADDRESS, KEY)
    for client in ("codex", "claude", "gemini"):
        first = _steps(document, client)[0]
        assert first["kind"] == "shell"
        assert first["text"] == f"trio-pool setup {client} --write --server {ADDRESS} --key {KEY}"


def test_manual_snippets_put_the_key_where_each_cli_sends_it() -> None:
    """Codex header + no ChatGPT login, Claude CLAUDE_CODE_OAUTH_TOKEN, Gemini GCA token."""
    document = instructions(ADDRESS, KEY)
    codex = tomllib.loads(_steps(document, "codex")[1]["text"])
    block = codex["model_providers"]["trio-pool"]
    assert codex["model_provider"] == "trio-pool"
    assert block["base_url"] == f"{ADDRESS}/v1"
    assert block["requires_openai_auth"] is False
    assert block["http_headers"] == {"x-trio-pool-key": KEY}
    claude = json.loads(_steps(document, "claude")[1]["text"])
    assert claude["env"] == {"ANTHROPIC_BASE_URL": ADDRESS, "CLAUDE_CODE_OAUTH_TOKEN": KEY}
    assert f"export CLAUDE_CODE_OAUTH_TOKEN={KEY}" in _steps(document, "claude")[2]["text"]
    gemini = _steps(document, "gemini")[1]
    assert gemini["kind"] == "env"
    assert gemini["text"].splitlines() == [
        f"CODE_ASSIST_ENDPOINT={ADDRESS}",
        "GOOGLE_GENAI_USE_GCA=true",
        f"GOOGLE_CLOUD_ACCESS_TOKEN={KEY}",
    ]


def test_placeholder_when_no_key_and_filling_it_gives_the_keyed_document() -> None:
    """key=None: `{{KEY}}` wherever the key goes; substituting it equals the filled document."""
    templated = json.dumps(instructions(ADDRESS, None))
    assert PLACEHOLDER == "{{KEY}}"
    # 3 one-liners, 3 snippets, 1 export line; Claude on Codex: 1 line, 1 snippet; chat: 1
    # line, 1 snippet
    assert templated.count(PLACEHOLDER) == 11
    assert json.loads(templated.replace(PLACEHOLDER, KEY)) == instructions(ADDRESS, KEY)


def test_local_mode_has_no_key_lines() -> None:
    """shared=False: no key, no placeholder; Codex keeps its own login and its built-in
    provider, Claude Code runs as a subscriber on a placeholder token."""
    document = instructions(ADDRESS, None, shared=False)
    text = json.dumps(document)
    assert PLACEHOLDER not in text
    assert "--key" not in text
    for client in ("codex", "claude", "gemini"):
        snippets = "".join(s["text"] for s in _steps(document, client) if s["kind"] != "text")
        assert ADDRESS in snippets
        assert "ANTHROPIC_AUTH_TOKEN" not in snippets
        assert "GOOGLE_CLOUD_ACCESS_TOKEN" not in snippets
    codex = tomllib.loads(_steps(document, "codex")[1]["text"])
    assert codex == {
        "openai_base_url": f"{ADDRESS}/v1",
        "chatgpt_base_url": f"{ADDRESS}/backend-api",
    }
    assert "export CLAUDE_CODE_OAUTH_TOKEN=pool" in _steps(document, "claude")[2]["text"]


def test_claude_code_on_codex_and_chat_clients_are_in_the_setup_document() -> None:
    """The Setup page shows how to run Claude Code on Codex accounts and what a Chat
    Completions client needs (base URL /v1 and the key)."""
    document = instructions(ADDRESS, KEY)
    claude = "\n".join(step["text"] for step in _steps(document, "claude"))
    assert "--on codex" in claude
    assert '"ANTHROPIC_MODEL": "gpt-6.1-sol"' in claude
    assert '"ANTHROPIC_DEFAULT_HAIKU_MODEL": "gpt-5.4-mini"' in claude
    assert '"ANTHROPIC_SMALL_FAST_MODEL": "gpt-5.4-mini"' in claude
    command, settings = _steps(document, "chat")[:2]
    assert command["text"] == f"trio-pool setup chat --server {ADDRESS} --key {KEY}"
    assert f"OPENAI_BASE_URL={ADDRESS}/v1" in settings["text"]
    assert f"OPENAI_API_KEY={KEY}" in settings["text"]
    assert "gpt-6.1-sol" in settings["text"]
