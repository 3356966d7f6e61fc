"""`setup`: structural, idempotent edits of each CLI's config, with backups and --undo."""

from __future__ import annotations

import json
import stat
import tomllib
from pathlib import Path

import pytest

from trio_pool.cli import main
from trio_pool.errors import LoginError
from trio_pool.logs import mask
from trio_pool.setup.clients import apply_setup, plan_setup, undo_setup

URL = "http://127.0.0.1:8989"
KEY = "tp-" + "k" * 36 + "WXYZ"
OTHER_KEY = "tp-" + "o" * 36 + "ABCD"
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


def test_codex_moves_the_built_in_provider_and_keeps_the_rest(tmp_path: Path) -> None:
    """Local mode: openai_base_url and chatgpt_base_url, no provider of our own (Codex files
    sessions under the provider's id: the earlier ones stay resumable); comments kept."""
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text(CODEX_BEFORE)
    apply_setup(plan_setup("codex", URL, env={}, home=tmp_path))
    text = path.read_text()
    assert "# my codex settings" in text
    assert "# keep me" in text
    config = tomllib.loads(text)
    assert config["openai_base_url"] == f"{URL}/v1"
    assert config["chatgpt_base_url"] == f"{URL}/backend-api"
    assert "model_provider" not in config
    assert "trio-pool" not in config["model_providers"]


def test_codex_setup_leaves_an_earlier_custom_provider_for_the_built_in(tmp_path: Path) -> None:
    """A config an older setup pointed at the trio-pool provider goes back to the built-in."""
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    apply_setup(plan_setup("codex", URL, env={}, home=tmp_path, custom_provider=True))
    assert tomllib.loads(path.read_text())["model_provider"] == "trio-pool"
    apply_setup(plan_setup("codex", URL, env={}, home=tmp_path))
    config = tomllib.loads(path.read_text())
    assert "model_provider" not in config
    assert config["openai_base_url"] == f"{URL}/v1"


def test_codex_setup_refuses_to_hide_under_another_provider(tmp_path: Path) -> None:
    """A user's own model_provider would ignore openai_base_url: say so, change nothing."""
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text('model_provider = "other"\n')
    with pytest.raises(LoginError, match="--custom-provider"):
        plan_setup("codex", URL, env={}, home=tmp_path)


def test_codex_custom_provider_keeps_comments_and_other_settings(tmp_path: Path) -> None:
    """--custom-provider: comments, other keys and other providers survive; the trio-pool
    block is complete."""
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text(CODEX_BEFORE)
    apply_setup(plan_setup("codex", URL, env={}, home=tmp_path, custom_provider=True))
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
    assert settings == {
        "model": "opus",
        "env": {"FOO": "1", "ANTHROPIC_BASE_URL": URL, "CLAUDE_CODE_OAUTH_TOKEN": "pool"},
    }
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
    """--server must be http(s)://HOST:PORT."""
    with pytest.raises(LoginError, match="--server"):
        plan_setup("claude", "127.0.0.1:8989/x", env={}, home=tmp_path)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _carried_key(client: str, text: str) -> str:
    """The key where each CLI picks it up (checked against the real CLIs)."""
    if client == "codex":
        block = tomllib.loads(text)["model_providers"]["trio-pool"]
        assert block["requires_openai_auth"] is False  # else Codex asks for a ChatGPT login
        return str(block["http_headers"]["x-trio-pool-key"])
    if client == "claude":
        env = json.loads(text)["env"]
        assert "ANTHROPIC_AUTH_TOKEN" not in env  # it would make Claude Code an API user
        return str(env["CLAUDE_CODE_OAUTH_TOKEN"])
    lines = dict(line.split("=", 1) for line in text.splitlines())
    assert lines["GOOGLE_GENAI_USE_GCA"] == "true"
    return lines["GOOGLE_CLOUD_ACCESS_TOKEN"]


@pytest.mark.parametrize("client", ["codex", "claude", "gemini"])
def test_key_is_written_0600_idempotently_and_undone(client: str, tmp_path: Path) -> None:
    """--key puts the key where the CLI sends it, in a 0600 file; again: no change; --undo."""
    plan = plan_setup(client, URL, env={}, home=tmp_path, key=KEY)  # type: ignore[arg-type]
    apply_setup(plan)
    assert _carried_key(client, plan.path.read_text()) == KEY
    assert _mode(plan.path) == 0o600
    again = plan_setup(client, URL, env={}, home=tmp_path, key=KEY)  # type: ignore[arg-type]
    assert not again.changed
    assert apply_setup(again) is None
    undo_setup(client, env={}, home=tmp_path)  # type: ignore[arg-type]
    assert not plan.path.exists()


def test_key_makes_an_existing_file_0600_and_undo_restores_it(tmp_path: Path) -> None:
    """A 0644 settings.json that gains a key becomes 0600; --undo brings back the old text."""
    path = tmp_path / ".claude" / "settings.json"
    path.parent.mkdir()
    before = '{"env": {"FOO": "1"}}'
    path.write_text(before)
    path.chmod(0o644)
    apply_setup(plan_setup("claude", URL, env={}, home=tmp_path, key=KEY))
    assert _mode(path) == 0o600
    assert json.loads(path.read_text())["env"]["FOO"] == "1"
    undo_setup("claude", env={}, home=tmp_path)
    assert path.read_text() == before


def test_unchanged_file_with_key_is_still_made_0600(tmp_path: Path) -> None:
    """A file that already carries the key but is world-readable is tightened, not rewritten."""
    plan = plan_setup("gemini", URL, env={}, home=tmp_path, key=KEY)
    apply_setup(plan)
    plan.path.chmod(0o644)
    assert apply_setup(plan_setup("gemini", URL, env={}, home=tmp_path, key=KEY)) is None
    assert _mode(plan.path) == 0o600


def test_gemini_key_lines_replace_existing_ones(tmp_path: Path) -> None:
    """Existing token lines (also `export` ones) are replaced, other lines kept in place."""
    path = tmp_path / ".gemini" / ".env"
    path.parent.mkdir()
    path.write_text("FOO=1\nexport GOOGLE_CLOUD_ACCESS_TOKEN=pool\nGOOGLE_GENAI_USE_GCA=false\n")
    apply_setup(plan_setup("gemini", URL, env={}, home=tmp_path, key=KEY))
    assert path.read_text().splitlines() == [
        "FOO=1",
        f"GOOGLE_CLOUD_ACCESS_TOKEN={KEY}",
        "GOOGLE_GENAI_USE_GCA=true",
        f"CODE_ASSIST_ENDPOINT={URL}",
    ]


def test_codex_keeps_other_http_headers(tmp_path: Path) -> None:
    """A header the user added to the trio-pool provider stays beside the key header."""
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text('[model_providers.trio-pool]\nhttp_headers = { "x-mine" = "1" }\n')
    apply_setup(plan_setup("codex", URL, env={}, home=tmp_path, key=KEY))
    headers = tomllib.loads(path.read_text())["model_providers"]["trio-pool"]["http_headers"]
    assert headers == {"x-mine": "1", "x-trio-pool-key": KEY}


@pytest.mark.parametrize("client", ["codex", "claude", "gemini"])
def test_diff_and_repr_mask_the_keys(client: str, tmp_path: Path) -> None:
    """The diff shows masked keys only, the new one and the one it replaces; repr shows none."""
    apply_setup(plan_setup(client, URL, env={}, home=tmp_path, key=OTHER_KEY))  # type: ignore[arg-type]
    plan = plan_setup(client, URL, env={}, home=tmp_path, key=KEY)  # type: ignore[arg-type]
    diff = plan.diff()
    assert mask(KEY) in diff
    assert mask(OTHER_KEY) in diff
    assert KEY not in diff
    assert OTHER_KEY not in diff
    assert KEY not in repr(plan)


def test_bad_key_is_refused_without_echoing_it(tmp_path: Path) -> None:
    """A key that would break the file's syntax is refused, and the message does not show it."""
    with pytest.raises(LoginError, match="--key") as info:
        plan_setup("gemini", URL, env={}, home=tmp_path, key='tp-abc"def ghi')
    assert "abc" not in str(info.value)


def test_cli_setup_key_masks_and_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`trio-pool setup claude --server URL --key KEY`: the printed diff masks the key; --write
    stores it 0600."""
    for name in ("CLAUDE_CONFIG_DIR", "TRIO_POOL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    argv = ["setup", "claude", "--server", "http://10.0.0.2:8989", "--key", KEY]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert mask(KEY) in printed
    assert KEY not in printed
    assert main([*argv, "--write"]) == 0
    assert KEY not in capsys.readouterr().out
    path = tmp_path / ".claude" / "settings.json"
    assert json.loads(path.read_text())["env"] == {
        "ANTHROPIC_BASE_URL": "http://10.0.0.2:8989",
        "CLAUDE_CODE_OAUTH_TOKEN": KEY,
    }
    assert _mode(path) == 0o600


def test_cli_setup_claude_on_codex_writes_the_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`setup claude --on codex --write`: a Codex model and a Codex small/fast model beside
    the base URL, so no request of the session needs a Claude account."""
    for name in ("CLAUDE_CONFIG_DIR", "TRIO_POOL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["setup", "claude", "--server", URL, "--on", "codex", "--write"]) == 0
    env = json.loads((tmp_path / ".claude" / "settings.json").read_text())["env"]
    assert env["ANTHROPIC_BASE_URL"] == URL
    assert env["ANTHROPIC_MODEL"] == "gpt-6.1-sol"
    assert (
        env["ANTHROPIC_DEFAULT_HAIKU_MODEL"] == env["ANTHROPIC_SMALL_FAST_MODEL"] == "gpt-5.4-mini"
    )
    capsys.readouterr()
    argv = ["setup", "claude", "--server", URL, "--model", "gpt-5.5", "--small-model", "gpt-5"]
    assert main([*argv, "--write"]) == 0
    env = json.loads((tmp_path / ".claude" / "settings.json").read_text())["env"]
    assert (env["ANTHROPIC_MODEL"], env["ANTHROPIC_DEFAULT_HAIKU_MODEL"]) == ("gpt-5.5", "gpt-5")


def test_cli_setup_claude_with_a_claude_model_leaves_the_small_model_alone(
    tmp_path: Path,
) -> None:
    """A Claude --model sets only ANTHROPIC_MODEL: Claude Code keeps its own small model."""
    from trio_pool.setup.edits import claude_models

    plan = plan_setup("claude", URL, env={}, home=tmp_path, models=claude_models("claude-opus-5-5"))
    env = json.loads(plan.new_text)["env"]
    assert env["ANTHROPIC_MODEL"] == "claude-opus-5-5"
    assert "ANTHROPIC_DEFAULT_HAIKU_MODEL" not in env
    assert "ANTHROPIC_SMALL_FAST_MODEL" not in env


def test_cli_setup_chat_prints_the_openai_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """`setup chat`: the /v1 base URL and the key a Chat Completions client needs; nothing
    to write."""
    monkeypatch.delenv("TRIO_POOL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["setup", "chat", "--server", URL, "--key", KEY]) == 0
    printed = capsys.readouterr().out
    assert f"OPENAI_BASE_URL={URL}/v1" in printed
    assert f"OPENAI_API_KEY={KEY}" in printed
    assert main(["setup", "chat", "--write"]) == 1
    assert main(["setup", "codex", "--on", "codex"]) == 1
