"""``accounts import``: take the login a CLI already has into the pool.

Where each CLI keeps its login (protocols.md §1.3, §2.3, §3.3): Codex ``$CODEX_HOME/auth.json``
(default ``~/.codex``), Claude Code ``$CLAUDE_CONFIG_DIR/.credentials.json`` (default
``~/.claude``; on macOS the keychain), Gemini CLI ``$GEMINI_CLI_HOME/.gemini/oauth_creds.json``
(``GEMINI_CLI_HOME`` replaces the home directory). Synchronous file I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from trio_pool.credentials.store import read_document
from trio_pool.errors import CredentialsError, LoginError
from trio_pool.login.pooldir import add_account
from trio_pool.providers.base import ProviderName
from trio_pool.providers.wire import as_str, dig

FILES: dict[ProviderName, str] = {
    "codex": "auth.json",
    "claude": ".credentials.json",
    "gemini": "oauth_creds.json",
}
SHARED_LOGIN_WARNING = (
    "this login is now in the pool AND in the CLI: Codex and Claude refresh tokens are "
    "single-use, so whichever refreshes second is logged out. Keep using the CLI only "
    "through the proxy, or run `trio-pool accounts login {provider}` to give the pool a "
    "separate session."
)


@attrs.frozen
class Imported:
    name: str
    path: Path
    source: Path
    replaced: bool
    email: str | None


def cli_dir(provider: ProviderName, env: Mapping[str, str], home: Path) -> Path:
    """The directory where the CLI keeps its login."""
    if provider == "codex":
        return Path(env["CODEX_HOME"]) if env.get("CODEX_HOME") else home / ".codex"
    if provider == "claude":
        return Path(env["CLAUDE_CONFIG_DIR"]) if env.get("CLAUDE_CONFIG_DIR") else home / ".claude"
    base = Path(env["GEMINI_CLI_HOME"]) if env.get("GEMINI_CLI_HOME") else home
    return base / ".gemini"


def credential_path(provider: ProviderName, env: Mapping[str, str], home: Path) -> Path:
    return cli_dir(provider, env, home) / FILES[provider]


def _missing(provider: ProviderName, path: Path, platform: str) -> LoginError:
    if provider == "claude" and platform == "darwin":
        return LoginError(
            f"no {path}: on macOS Claude Code keeps its login in the keychain. Export it with "
            "`security find-generic-password -s 'Claude Code-credentials' -w > claude.json`, "
            "then `trio-pool accounts import claude --from claude.json` (and delete claude.json)"
        )
    hints = {
        "codex": "log in with `codex login` (or set CODEX_HOME); a keyring-stored login "
        "cannot be read: use `trio-pool accounts login codex`",
        "claude": "log in with `claude` (or set CLAUDE_CONFIG_DIR), "
        "or use `trio-pool accounts login claude`",
        "gemini": "log in with `gemini` (or set GEMINI_CLI_HOME); an encrypted login "
        "(GEMINI_FORCE_ENCRYPTED_FILE_STORAGE) cannot be read: use `trio-pool accounts login gemini`",
    }
    return LoginError(f"no {path}: {hints[provider]}")


def _claude_account(env: Mapping[str, str], home: Path) -> dict[str, Any] | None:
    """``oauthAccount`` from Claude Code's ``.claude.json``: the email the tokens do not carry."""
    config_dir = env.get("CLAUDE_CONFIG_DIR")
    path = Path(config_dir) / ".claude.json" if config_dir else home / ".claude.json"
    try:
        document, _info = read_document(path)
    except CredentialsError:
        return None
    account = document.get("oauthAccount")
    if not isinstance(account, dict):
        return None
    keys = ("accountUuid", "emailAddress", "organizationUuid")
    return {key: account.get(key) for key in keys if as_str(account.get(key))}


def _gemini_email(env: Mapping[str, str], home: Path) -> str | None:
    """The active account of ``google_accounts.json`` (when the id_token is missing)."""
    try:
        document, _info = read_document(cli_dir("gemini", env, home) / "google_accounts.json")
    except CredentialsError:
        return None
    return as_str(document.get("active"))


def import_login(
    pool_dir: Path,
    provider: ProviderName,
    *,
    source: Path | None = None,
    name: str | None = None,
    env: Mapping[str, str],
    home: Path,
    platform: str,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> Imported:
    """Copy the CLI's login (or ``source``) into the pool; refuses a second copy.

    ``check`` sees the document before it is written and raises LoginError to refuse it
    (a Google account Code Assist does not serve)."""
    path = source or credential_path(provider, env, home)
    if not path.exists():
        raise _missing(provider, path, platform)
    try:
        document, _info = read_document(path)
    except CredentialsError as exc:
        raise LoginError(str(exc)) from None
    if provider == "claude":
        # Only the login: other secure-storage keys (MCP servers' tokens) stay with the CLI.
        kept = {k: v for k, v in document.items() if k in ("claudeAiOauth", "oauthAccount")}
        if "oauthAccount" not in kept and source is None:
            account = _claude_account(env, home)
            if account:
                kept["oauthAccount"] = account
        document = kept
    if provider == "gemini" and name is None and not dig(document, "id_token"):
        name = _gemini_email(env, home)
    if check is not None:
        check(document)
    account_name, written, replaced = add_account(pool_dir, provider, document, name)
    email = account_name.split("/", 1)[1] if "@" in account_name else None
    return Imported(account_name, written, path, replaced, email)
