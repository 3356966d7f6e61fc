"""The edits that point each CLI at the proxy, done structurally and idempotently.

- Codex: ``$CODEX_HOME/config.toml`` (tomlkit, comments kept): a ``trio-pool`` provider with
  ``requires_openai_auth`` (Codex keeps using its ChatGPT login) and ``supports_websockets``,
  selected by ``model_provider``, plus ``chatgpt_base_url`` for the usage calls.
- Claude Code: ``$CLAUDE_CONFIG_DIR/settings.json`` ``env.ANTHROPIC_BASE_URL`` (other keys kept).
- Gemini CLI: ``CODE_ASSIST_ENDPOINT`` in ``$GEMINI_CLI_HOME/.gemini/.env``. The Gemini CLI
  reads the first ``.gemini/.env`` or ``.env`` walking up from the working directory and falls
  back to this one, and its settings.json has no endpoint key.

A run that would not change the file writes nothing (and makes no backup).
"""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import tomlkit
import tomlkit.exceptions

from trio_pool.credentials.store import FILE_MODE
from trio_pool.login import LoginError
from trio_pool.login.importer import cli_dir
from trio_pool.providers.base import ProviderName
from trio_pool.setup.backup import backup_file, latest_backup, write_text_atomic

PROVIDER_ID = "trio-pool"
ABSENT = ".absent"  # marker (not a *.bak backup): the file did not exist before setup
NEXT_STEPS: dict[ProviderName, str] = {
    "codex": "Codex still needs a login of its own in auth.json (any ChatGPT login; the proxy "
    "replaces it with a pooled account's). Start `codex` as usual.",
    "claude": "Start `claude` as usual. Without a Claude login of its own, also set "
    "ANTHROPIC_AUTH_TOKEN=pool (any value: the proxy supplies the real token).",
    "gemini": "Start `gemini` from a directory without its own .env. Without a Google login of "
    "its own, also set GOOGLE_GENAI_USE_GCA=true GOOGLE_CLOUD_ACCESS_TOKEN=pool.",
}


@attrs.frozen
class SetupPlan:
    client: ProviderName
    path: Path
    old_text: str | None  # None: the file does not exist yet
    new_text: str

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text

    def diff(self) -> str:
        old = (self.old_text or "").splitlines(keepends=True)
        new = self.new_text.splitlines(keepends=True)
        name = str(self.path)
        return "".join(difflib.unified_diff(old, new, name, name))


def config_path(client: ProviderName, env: Mapping[str, str], home: Path) -> Path:
    names = {"codex": "config.toml", "claude": "settings.json", "gemini": ".env"}
    return cli_dir(client, env, home) / names[client]


def _codex(text: str, url: str) -> str:
    try:
        document = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise LoginError(f"config.toml is not valid TOML ({exc}); fix it first") from None
    document["model_provider"] = PROVIDER_ID
    document["chatgpt_base_url"] = f"{url}/backend-api"
    providers = document.get("model_providers")
    if providers is None:
        providers = tomlkit.table(is_super_table=True)
        document["model_providers"] = providers
    block = providers.get(PROVIDER_ID)
    if block is None:
        block = tomlkit.table()
        providers[PROVIDER_ID] = block
    values: dict[str, Any] = {
        "name": PROVIDER_ID,
        "base_url": f"{url}/v1",
        "wire_api": "responses",
        "requires_openai_auth": True,
        "supports_websockets": True,
    }
    for key, value in values.items():
        if block.get(key) != value:
            block[key] = value
    return tomlkit.dumps(document)


def _claude(text: str, url: str) -> str:
    try:
        document = json.loads(text) if text.strip() else {}
    except ValueError:
        raise LoginError("settings.json is not valid JSON; fix it first") from None
    if not isinstance(document, dict) or not isinstance(document.get("env", {}), dict):
        raise LoginError("settings.json: expected an object with an object `env`")
    if document.get("env", {}).get("ANTHROPIC_BASE_URL") == url:
        return text  # already set: keep the user's formatting
    document.setdefault("env", {})["ANTHROPIC_BASE_URL"] = url
    return json.dumps(document, indent=2) + "\n"


_ENV_LINE = re.compile(r"^\s*(?:export\s+)?CODE_ASSIST_ENDPOINT\s*=")


def _gemini(text: str, url: str) -> str:
    line = f"CODE_ASSIST_ENDPOINT={url}"
    lines = text.splitlines()
    found = [i for i, existing in enumerate(lines) if _ENV_LINE.match(existing)]
    if found:
        lines[found[0]] = line
        lines = [existing for i, existing in enumerate(lines) if i not in found[1:]]
    else:
        lines.append(line)
    return "\n".join(lines) + "\n"


EDITS = {"codex": _codex, "claude": _claude, "gemini": _gemini}


def plan_setup(client: ProviderName, url: str, *, env: Mapping[str, str], home: Path) -> SetupPlan:
    """What ``setup CLIENT`` would write; nothing is changed yet."""
    url = url.rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", url):
        raise LoginError(f"--url: expected http://HOST:PORT, got {url!r}")
    path = config_path(client, env, home)
    try:
        old: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    return SetupPlan(client, path, old, EDITS[client](old or "", url))


def apply_setup(plan: SetupPlan, now: float | None = None) -> Path | None:
    """Write the plan after backing up the current file; returns the backup (None: no change)."""
    if not plan.changed:
        return None
    plan.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    backup = backup_file(plan.path, now)
    if backup is None:  # remember that there was no file, so --undo removes it
        backup = plan.path.with_name(f"{plan.path.name}.trio-pool-new{ABSENT}")
        backup.touch(mode=FILE_MODE)
    write_text_atomic(plan.path, plan.new_text)
    return backup


def undo_setup(client: ProviderName, *, env: Mapping[str, str], home: Path) -> tuple[Path, str]:
    """Put back the file as it was before the last ``setup --write``."""
    path = config_path(client, env, home)
    marker = path.with_name(f"{path.name}.trio-pool-new{ABSENT}")
    backup = latest_backup(path)
    if backup is not None:
        os.replace(backup, path)
        return path, f"restored from {backup.name}"
    if marker.exists():
        path.unlink(missing_ok=True)
        marker.unlink()
        return path, "removed (it did not exist before setup)"
    raise LoginError(f"no trio-pool backup of {path} to restore")
