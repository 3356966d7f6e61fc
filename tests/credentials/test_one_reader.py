"""One pool-directory reader for the proxy and the CLI (issue 11), and what it refuses:
hidden files, FIFOs (L1), deep JSON (M7); symlinks are written through (L8)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import attrs
import pytest
import trio

from trio_pool.accounts.pool import Pool
from trio_pool.config import Config, RoutingConfig
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.credentials.store import scan_pool, write_document_atomic
from trio_pool.login.pooldir import list_accounts
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import credential_file

NOW = 1_800_000_000.0


def login(provider: str, name: str) -> dict[str, object]:
    return credential_file(new_account(provider, name, now=NOW), NOW)  # type: ignore[arg-type]


def write(path: Path, document: object, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    path.chmod(mode)
    return path


def both(pool_dir: Path) -> tuple[AccountRegistry, Config]:
    config = attrs.evolve(Config(), pool_dir=pool_dir)
    registry = AccountRegistry(config, Pool(RoutingConfig()))
    registry.scan()
    return registry, config


def test_the_proxy_and_the_cli_agree_on_hidden_files(tmp_path: Path) -> None:
    """``pool/codex/.x.json`` is not an account for the proxy either (it was, as codex/.x)."""
    write(tmp_path / "codex" / "a.json", login("codex", "a"))
    write(tmp_path / "codex" / ".x.json", login("codex", "x"))
    registry, config = both(tmp_path)
    assert set(registry.accounts) == {"codex/a"}
    assert [row.name for row in list_accounts(config)] == ["codex/a"]


def test_the_proxy_and_the_cli_agree_on_insecure_modes(tmp_path: Path) -> None:
    """Group-writable (but not readable) is insecure for both: anyone in the group could
    put their own tokens in the file."""
    write(tmp_path / "claude" / "gw.json", login("claude", "gw"), mode=0o620)
    write(tmp_path / "claude" / "ok.json", login("claude", "ok"), mode=0o600)
    registry, _config = both(tmp_path)
    scan = scan_pool(tmp_path)
    assert {d.name: d.insecure_mode for d in scan.documents} == {
        "claude/gw": True,
        "claude/ok": False,
    }
    assert {n: a.insecure_mode for n, a in registry.accounts.items()} == {
        "claude/gw": True,
        "claude/ok": False,
    }


async def test_a_fifo_in_the_pool_is_named_and_never_hangs_a_reader(tmp_path: Path) -> None:
    """L1: ``mkfifo pool/claude/pipe.json``: the CLI's scan and the proxy's both return at
    once and name it; the other accounts load."""
    write(tmp_path / "claude" / "a.json", login("claude", "a"))
    os.mkfifo(tmp_path / "claude" / "pipe.json")
    with trio.fail_after(5):
        scan = await trio.to_thread.run_sync(scan_pool, tmp_path, abandon_on_cancel=True)
        registry, _config = await trio.to_thread.run_sync(both, tmp_path, abandon_on_cancel=True)
    assert [e.reason for e in scan.errors] == ["not a regular file"]
    assert set(registry.accounts) == {"claude/a"}
    assert registry.problems["claude/pipe"] == "not a regular file"


def test_a_deeply_nested_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    """M7: '[' * 200000 + ']' * 200000 is skipped and named by both readers."""
    write(tmp_path / "claude" / "a.json", login("claude", "a"))
    write(tmp_path / "claude" / "deep.json", "[" * 200_000 + "]" * 200_000)
    write(tmp_path / "gemini" / "deep.json", '{"a":' * 100_000 + "1" + "}" * 100_000)
    registry, _config = both(tmp_path)
    assert set(registry.accounts) == {"claude/a"}
    assert "nested too deeply" in registry.problems["claude/deep"]
    assert "nested too deeply" in registry.problems["gemini/deep"]
    reasons = [e.reason for e in scan_pool(tmp_path).errors]
    assert reasons == ["JSON nested too deeply"] * 2


def test_a_symlinked_pool_file_is_written_through_and_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """L8: a link's target gets the new tokens and the link stays a link (replacing it would
    leave the outside file with a spent token); loading it logs a warning naming it."""
    outside = write(tmp_path / "elsewhere" / "creds.json", login("claude", "a"))
    link = tmp_path / "pool" / "claude" / "a.json"
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    registry, _config = both(tmp_path / "pool")
    account = registry.accounts["claude/a"]
    assert account.symlink
    assert "pool.account.symlink account=claude/a" in caplog.text
    write_document_atomic(link, {"claudeAiOauth": {"accessToken": "new"}})
    assert link.is_symlink()
    assert json.loads(outside.read_text()) == {"claudeAiOauth": {"accessToken": "new"}}
    assert outside.stat().st_mode & 0o777 == 0o600
