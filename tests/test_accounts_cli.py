"""`trio-pool accounts ...` and `setup ...` from the command line: output, --json, exit codes."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from trio_pool.cli import main
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import credential_file

NOW = 1_900_000_000.0


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway HOME and working directory (config.toml and pool/ live there)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("CODEX_HOME", "CLAUDE_CONFIG_DIR", "GEMINI_CLI_HOME", "TRIO_POOL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    # No proxy is listening on this port: `list` must work without one.
    (tmp_path / "config.toml").write_text('# my pool\nlisten = "127.0.0.1:9"  # nobody here\n')
    account = new_account("codex", "hana", now=NOW)
    auth = tmp_path / "home" / ".codex" / "auth.json"
    auth.parent.mkdir(parents=True)
    auth.write_text(json.dumps(credential_file(account, NOW)))
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_import_disable_enable(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """import warns about shared logins; list shows masked rows; disable edits config.toml."""
    code, out, _ = run(capsys, "accounts", "list")
    assert code == 0
    assert "no accounts in the pool yet" in out
    code, out, err = run(capsys, "accounts", "import", "codex", "--json")
    assert code == 0
    assert json.loads(out)["name"] == "codex/hana@example.com"
    assert "single-use" in err
    assert "accounts login codex" in err
    code, out, _ = run(capsys, "accounts", "list")
    assert "codex/hana@example.com" in out
    assert "not running" in out
    assert "ACCOUNT" in out.splitlines()[0]
    code, out, _ = run(capsys, "accounts", "list", "--json")
    (row,) = json.loads(out)["accounts"]
    assert row["email"] == "hana@example.com"
    assert row["refresh"].startswith("rt_…")
    token = json.loads((home / "home/.codex/auth.json").read_text())["tokens"]["refresh_token"]
    assert token not in out
    code, out, _ = run(capsys, "accounts", "disable", "hana@example.com")
    assert code == 0
    text = (home / "config.toml").read_text()
    assert "# my pool" in text
    assert "# nobody here" in text
    assert tomllib.loads(text)["accounts"]["codex/hana@example.com"]["disabled"] is True
    code, out, _ = run(capsys, "accounts", "list", "--json")
    assert json.loads(out)["accounts"][0]["state"] == "disabled"
    run(capsys, "accounts", "enable", "codex/hana@example.com")
    text = (home / "config.toml").read_text()
    assert tomllib.loads(text)["accounts"]["codex/hana@example.com"]["disabled"] is False


def test_use_and_remove(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """use backs up the CLI's file before writing; remove deletes the pool file."""
    run(capsys, "accounts", "import", "codex", "--name", "work")
    code, out, err = run(capsys, "accounts", "use", "work", "--json")
    done = json.loads(out)
    assert code == 0
    assert Path(done["backup"]).exists()
    assert "single-use" in err
    code, out, _ = run(capsys, "accounts", "remove", "codex/work")
    assert code == 0
    assert not (home / "pool" / "codex" / "work.json").exists()
    code, _, err = run(capsys, "accounts", "remove", "codex/work")
    assert code == 1
    assert err.count("\n") == 1
    assert "no account" in err


def test_setup_write_twice_and_undo(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """setup prints a diff, --write applies once, the second run changes nothing, --undo."""
    path = home / "home" / ".codex" / "config.toml"
    code, out, _ = run(capsys, "setup", "codex")
    assert code == 0
    assert "+openai_base_url" in out
    assert not path.exists()
    run(capsys, "setup", "codex", "--write", "--url", "http://127.0.0.1:8989")
    first = path.read_bytes()
    code, out, _ = run(
        capsys, "setup", "codex", "--write", "--url", "http://127.0.0.1:8989", "--json"
    )
    assert json.loads(out)["changed"] is False
    assert path.read_bytes() == first
    code, out, _ = run(capsys, "setup", "codex", "--undo")
    assert code == 0
    assert not path.exists()


def test_bad_usage_exits_2(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Unknown providers and a refresh without targets are usage errors."""
    with pytest.raises(SystemExit) as exited:
        main(["accounts", "import", "openai"])
    assert exited.value.code == 2
    code, _, err = run(capsys, "accounts", "refresh")
    assert code == 2
    assert "--all" in err
