"""Planning, writing and undoing the edits (trio_pool.setup.edits) of each CLI's config file.

- Codex: ``$CODEX_HOME/config.toml`` (tomlkit, comments kept): ``openai_base_url`` moves the
  built-in provider (sessions made before stay resumable); with a pool key, or
  ``--custom-provider``, a ``trio-pool`` provider selected by ``model_provider``. Both with
  ``chatgpt_base_url`` for the usage calls.
- Claude Code: ``$CLAUDE_CONFIG_DIR/settings.json`` ``env`` (other keys kept).
- Gemini CLI: ``$GEMINI_CLI_HOME/.gemini/.env``. The Gemini CLI reads the first ``.gemini/.env``
  or ``.env`` walking up from the working directory and falls back to this one, and its
  settings.json has no endpoint key.

A run that would not change the file writes nothing (and makes no backup). A file that holds
a pool key is written 0600, and the key is masked in the diff.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path

import attrs

from trio_pool.credentials.store import FILE_MODE
from trio_pool.errors import LoginError
from trio_pool.files import backup_file, latest_backup, write_text_atomic
from trio_pool.login.importer import cli_dir
from trio_pool.logs import mask
from trio_pool.providers.base import ProviderName
from trio_pool.setup.edits import (
    KEY_NEXT_STEPS,
    NEXT_STEPS,
    claude_settings,
    codex_config,
    gemini_env,
)

__all__ = [
    "KEY_NEXT_STEPS",
    "NEXT_STEPS",
    "SetupPlan",
    "apply_setup",
    "config_path",
    "plan_setup",
    "undo_setup",
]

ABSENT = ".absent"  # marker (not a *.bak backup): the file did not exist before setup
# Pool keys are `tp-` + 40 url-safe characters; other bearer-safe shapes are let through.
_KEY = re.compile(r"^[A-Za-z0-9_\-.~+/=]{8,200}$")
_POOL_KEY = re.compile(r"\btp-[A-Za-z0-9_\-]{8,}")


@attrs.frozen
class SetupPlan:
    client: ProviderName
    path: Path
    old_text: str | None = attrs.field(repr=False)  # None: the file does not exist yet
    new_text: str = attrs.field(repr=False)
    key: str | None = attrs.field(default=None, repr=False)  # the pool key the file carries

    @property
    def changed(self) -> bool:
        return self.old_text != self.new_text

    def diff(self) -> str:
        old = (self.old_text or "").splitlines(keepends=True)
        new = self.new_text.splitlines(keepends=True)
        name = str(self.path)
        return _masked("".join(difflib.unified_diff(old, new, name, name)), self.key)


def _masked(text: str, key: str | None) -> str:
    """``text`` with the pool key (and any other pool key, e.g. the one being replaced) masked."""
    if key:
        text = text.replace(key, mask(key))
    return _POOL_KEY.sub(lambda m: mask(m.group(0)), text)


def config_path(client: ProviderName, env: Mapping[str, str], home: Path) -> Path:
    names = {"codex": "config.toml", "claude": "settings.json", "gemini": ".env"}
    return cli_dir(client, env, home) / names[client]


def plan_setup(
    client: ProviderName,
    url: str,
    *,
    env: Mapping[str, str],
    home: Path,
    key: str | None = None,
    custom_provider: bool = False,
    models: dict[str, str] | None = None,
) -> SetupPlan:
    """What ``setup CLIENT`` would write; nothing is changed yet. With ``key`` the CLI carries
    that pool key and needs no login of its own. ``custom_provider``: Codex gets a provider of
    its own even without a key (its earlier sessions are then not offered by ``resume``).
    ``models``: Claude Code's model variables (``edits.claude_models``)."""
    url = url.rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", url):
        raise LoginError(f"--server: expected http://HOST:PORT, got {url!r}")
    if key is not None and not _KEY.match(key):
        raise LoginError("--key: expected a pool key (tp-...) without spaces or quotes")
    path = config_path(client, env, home)
    try:
        old: str | None = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = None
    if client == "codex":
        new = codex_config(old or "", url, key, custom_provider=custom_provider)
    elif client == "claude":
        new = claude_settings(old or "", url, key, models)
    else:
        new = gemini_env(old or "", url, key)
    return SetupPlan(client, path, old, new, key)


def apply_setup(plan: SetupPlan, now: float | None = None) -> Path | None:
    """Write the plan after backing up the current file; returns the backup (None: no change)."""
    mode = FILE_MODE if plan.key is not None else None  # a key makes the file a secret
    if not plan.changed:
        if mode is not None and plan.path.stat().st_mode & 0o777 != mode:
            plan.path.chmod(mode)
        return None
    plan.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    backup = backup_file(plan.path, now)
    if backup is None:  # remember that there was no file, so --undo removes it
        backup = plan.path.with_name(f"{plan.path.name}.trio-pool-new{ABSENT}")
        backup.touch(mode=FILE_MODE)
    write_text_atomic(plan.path, plan.new_text, mode=mode)
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
