"""Importing the CLIs' own logins, `use` with its backup, and refreshing without a proxy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from tests.login.helpers import start_sim
from trio_pool import clock
from trio_pool.errors import LoginError
from trio_pool.login.importer import import_login
from trio_pool.login.manage import refresh_accounts
from trio_pool.login.switch import use_account
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import credential_file, write_pool
from trio_pool.upstream.client import UpstreamClient


def write_json(path: Path, document: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def test_import_honours_codex_home_and_refuses_duplicates(tmp_path: Path) -> None:
    """CODEX_HOME's auth.json is imported as codex/<email>, 0600; importing again is refused."""
    account = new_account("codex", "erin", now=1_900_000_000.0)
    write_json(tmp_path / "cx" / "auth.json", credential_file(account, 1_900_000_000.0))
    env = {"CODEX_HOME": str(tmp_path / "cx")}
    pool = tmp_path / "pool"
    done = import_login(pool, "codex", env=env, home=tmp_path / "home", platform="linux")
    assert done.name == "codex/erin@example.com"
    assert done.path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(LoginError, match="already in the pool"):
        import_login(pool, "codex", name="again", env=env, home=tmp_path, platform="linux")


def test_claude_import_takes_the_email_from_claude_json(tmp_path: Path) -> None:
    """Claude tokens are opaque: the email comes from .claude.json; other keys stay behind."""
    account = new_account("claude", "fay", now=1_900_000_000.0)
    document = {**credential_file(account, 1_900_000_000.0), "mcpOAuth": {"x": "secret"}}
    write_json(tmp_path / "cfg" / ".credentials.json", document)
    write_json(
        tmp_path / "cfg" / ".claude.json", {"oauthAccount": {"emailAddress": "fay@example.com"}}
    )
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")}
    done = import_login(tmp_path / "pool", "claude", env=env, home=tmp_path, platform="linux")
    assert done.name == "claude/fay@example.com"
    assert "mcpOAuth" not in json.loads(done.path.read_text())


def test_macos_claude_import_explains_the_keychain(tmp_path: Path) -> None:
    """On macOS a missing Claude file means the keychain: say how to export it."""
    with pytest.raises(LoginError, match=r"keychain.*security find-generic-password"):
        import_login(tmp_path / "pool", "claude", env={}, home=tmp_path, platform="darwin")


def test_use_writes_the_cli_file_after_a_backup(tmp_path: Path) -> None:
    """`use` puts the account into the CLI's file; the previous file is kept as a backup."""
    from trio_pool.config import structure_config

    config = structure_config({"pool_dir": "pool"}, base_dir=tmp_path)
    account = new_account("claude", "gus", now=1_900_000_000.0)
    write_json(tmp_path / "pool" / "claude" / "gus.json", credential_file(account, 1_900_000_000.0))
    target = tmp_path / "home" / ".claude" / ".credentials.json"
    previous = {"claudeAiOauth": {"accessToken": "old"}, "mcpOAuth": {"keep": 1}}
    write_json(target, previous)
    done = use_account(config, "gus", env={}, home=tmp_path / "home", platform="linux")
    assert done.target == target
    assert done.backup is not None
    assert json.loads(done.backup.read_text()) == previous
    written = json.loads(target.read_text())
    assert written["claudeAiOauth"]["accessToken"] == account.access_token
    assert written["mcpOAuth"] == {"keep": 1}
    assert any("single-use" in note for note in done.notes)


async def test_refresh_without_a_proxy(nursery: trio.Nursery, tmp_path: Path) -> None:
    """`accounts refresh` rotates the tokens in the file; a spent token says log in again."""
    sim = await start_sim(nursery, tmp_path)
    write_pool(sim.config.pool_dir, sim.state)
    client = UpstreamClient()
    try:
        with trio.fail_after(20):
            results = await refresh_accounts(sim.config, ["codex/alice", "gemini/bob"], client)
            assert [r.ok for r in results] == [True, True]
            assert (
                sim.state.account("codex/alice").refresh_token
                in (sim.config.pool_dir / "codex" / "alice.json").read_text()
            )
            # Someone else rotates claude/bob's token: our file now holds a spent one.
            old = sim.state.account("claude/bob")
            sim.state.rotate(
                old,
                access_token="x" * 20,
                refresh_token="sk-ant-ort01-" + "y" * 20,
                expires_at=clock.now() + 60,
            )
            (failed,) = await refresh_accounts(sim.config, ["claude/bob"], client)
            assert not failed.ok
            assert "log in again" in failed.detail
    finally:
        await client.aclose()
