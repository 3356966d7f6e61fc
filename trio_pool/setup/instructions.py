"""The SETUP document (dashboard contract): how to point each CLI at a pool, for people who have
the trio-pool command (a ``trio-pool setup`` line) and for those who do not (the same edits by
hand). Pure: the snippets are what ``setup --write`` would put into an empty file.

In shared mode without a key the literal placeholder ``{{KEY}}`` stands where the key goes; the
dashboard page substitutes the key it holds.
"""

from __future__ import annotations

from typing import Any

from trio_pool.setup.edits import (
    CLAUDE_TOKEN,
    KEY_NEXT_STEPS,
    LOCAL_TOKEN,
    NEXT_STEPS,
    chat_settings,
    claude_models,
    claude_settings,
    codex_config,
    gemini_env,
)

PLACEHOLDER = "{{KEY}}"
CLIENTS = ("codex", "claude", "gemini", "chat")
TITLES = {
    "codex": "Codex CLI",
    "claude": "Claude Code",
    "gemini": "Gemini CLI",
    "chat": "Chat Completions clients (opencode, aider, editors)",
}


def _step(label: str, kind: str, text: str) -> dict[str, str]:
    return {"label": label, "kind": kind, "text": text}


def _command(client: str, address: str, key: str | None) -> str:
    # A Chat Completions client has no file of ours: `setup chat` only prints its settings.
    write = "" if client == "chat" else " --write"
    line = f"trio-pool setup {client}{write} --server {address}"
    return line if key is None else f"{line} --key {key}"


def _manual(client: str, address: str, key: str | None) -> list[dict[str, str]]:
    if client == "chat":
        return [
            _step(
                "Or set these in the client (an OpenAI-compatible provider)",
                "env",
                chat_settings(address, key),
            )
        ]
    if client == "codex":
        text = codex_config("", address, key)
        return [_step("Or add this to ~/.codex/config.toml", "toml", text)]
    if client == "claude":
        token = key if key is not None else LOCAL_TOKEN
        exports = [f"export ANTHROPIC_BASE_URL={address}", f"export {CLAUDE_TOKEN}={token}"]
        return [
            _step(
                'Or merge this into ~/.claude/settings.json ("env" keeps your other variables)',
                "json",
                claude_settings("", address, key),
            ),
            _step("Or, for this shell only", "shell", "\n".join([*exports, "claude"])),
            _step(
                "On the pool's Codex accounts (a Codex model; no Claude account needed)",
                "shell",
                _command(client, address, key) + " --on codex",
            ),
            _step(
                "Or add these to settings.json's env",
                "json",
                claude_settings("", address, key, claude_models(None, on="codex")),
            ),
        ]
    return [
        _step(
            "Or add these lines to ~/.gemini/.env (a .env in your project is read first)",
            "env",
            gemini_env("", address, key),
        )
    ]


def instructions(address: str, key: str | None, *, shared: bool = True) -> dict[str, Any]:
    """SETUP = ``{"address", "clients": [{"client", "title", "steps": [{"label", "kind",
    "text"}]}]}`` for ``address`` (the proxy's base URL). ``shared=False``: local mode, no keys
    at all (each CLI keeps its own login and the proxy swaps the credential)."""
    address = address.rstrip("/")
    carried = (PLACEHOLDER if key is None else key) if shared else None
    clients = []
    for client in CLIENTS:
        label = (
            "With the trio-pool command installed, print them with"
            if client == "chat"
            else "With the trio-pool command installed, run"
        )
        steps = [
            _step(label, "shell", _command(client, address, carried)),
            *_manual(client, address, carried),
            _step("Then", "text", (KEY_NEXT_STEPS if shared else NEXT_STEPS)[client]),
        ]
        clients.append({"client": client, "title": TITLES[client], "steps": steps})
    return {"address": address, "clients": clients}
