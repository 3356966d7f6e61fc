"""`setup`: structural, idempotent edits of each CLI's config, with backups and --undo."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from trio_pool.login import LoginError
from trio_pool.setup.clients import apply_setup, plan_setup, undo_setup

URL = "http://127.0.0.1:8989"
CODEX_BEFORE = """# my codex settings
model = "gpt-5"  # the usual one

[model_providers.other]
name = "other"  # keep me
base_url = "http://example.invalid/v1"
"""


@pytest.mark.parametrize("client", ["codex", "claude", "gemini"])
def test_write_twice_changes_nothing_the_second_time(client: str, tmp_path: Path) -> None:
    """The second --write finds nothing to do: the file stays byte-identical, no new backup."""
    plan = plan_setup(client, URL, env={}, home=tmp_path)  # type: ignore[arg-type]
    assert plan.changed
    apply_setup(plan)
    first = plan.path.read_bytes()
    again = plan_setup(client, URL, env={}, home=tmp_path)  # type: ignore[arg-type]
    assert not again.changed
    assert apply_setup(again) is None
    assert plan.path.read_bytes() == first


def test_codex_keeps_comments_and_other_settings(tmp_path: Path) -> None:
    """Comments, other keys and other providers survive; the trio-pool block is complete."""
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text(CODEX_BEFORE)
    apply_setup(plan_setup("codex", URL, env={}, home=tmp_path))
    text = path.read_text()
    assert "# my codex settings" in text
    assert "# keep me" in text
    assert "# the usual one" in text
    config = tomllib.loads(text)
    assert config["model"] == "gpt-5"
    assert config["model_provider"] == "trio-pool"
    assert config["chatgpt_base_url"] == f"{URL}/backend-api"
    block = config["model_providers"]["trio-pool"]
    assert block["base_url"] == f"{URL}/v1"
    assert block["requires_openai_auth"] is True
    assert block["supports_websockets"] is True
    assert config["model_providers"]["other"]["name"] == "other"


def test_codex_home_is_honoured(tmp_path: Path) -> None:
    """CODEX_HOME moves config.toml; GEMINI_CLI_HOME replaces the home of .gemini."""
    plan = plan_setup("codex", URL, env={"CODEX_HOME": str(tmp_path / "cx")}, home=tmp_path)
    assert plan.path == tmp_path / "cx" / "config.toml"
    plan = plan_setup("gemini", URL, env={"GEMINI_CLI_HOME": str(tmp_path / "g")}, home=tmp_path)
    assert plan.path == tmp_path / "g" / ".gemini" / ".env"


def test_claude_keeps_other_keys_and_undo_restores(tmp_path: Path) -> None:
    """settings.json keeps its other keys; --undo puts back the exact previous file."""
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    before = '{"model": "opus", "env": {"FOO": "1"}}'
    path.write_text(before)
    backup = apply_setup(plan_setup("claude", URL, env={}, home=tmp_path))
    assert backup is not None
    assert backup.read_text() == before
    settings = json.loads(path.read_text())
    assert settings == {"model": "opus", "env": {"FOO": "1", "ANTHROPIC_BASE_URL": URL}}
    undo_setup("claude", env={}, home=tmp_path)
    assert path.read_text() == before


def test_gemini_env_line_replaced_and_undo_removes_new_file(tmp_path: Path) -> None:
    """An existing CODE_ASSIST_ENDPOINT line is replaced; a file setup created is removed."""
    plan = plan_setup("gemini", URL, env={}, home=tmp_path)
    apply_setup(plan)
    assert plan.path.read_text() == f"CODE_ASSIST_ENDPOINT={URL}\n"
    other = plan_setup("gemini", "http://127.0.0.1:9999", env={}, home=tmp_path)
    assert other.new_text == "CODE_ASSIST_ENDPOINT=http://127.0.0.1:9999\n"
    undo_setup("gemini", env={}, home=tmp_path)
    assert not plan.path.exists()
    with pytest.raises(LoginError, match="no trio-pool backup"):
        undo_setup("gemini", env={}, home=tmp_path)


def test_bad_url_is_refused(tmp_path: Path) -> None:
    """--url must be http(s)://HOST:PORT."""
    with pytest.raises(LoginError, match="--url"):
        plan_setup("claude", "127.0.0.1:8989/x", env={}, home=tmp_path)
