"""The pool directory as the registry sees it: added, changed, removed and broken files."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
import trio
import trio.testing

from trio_pool.accounts.pool import Pool
from trio_pool.config import Config, RoutingConfig
from trio_pool.credentials.registry import RELOAD_INTERVAL_S, AccountRegistry
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import credential_file

NOW = 1_800_000_000.0


def write(pool_dir: Path, provider: str, name: str, document: object) -> Path:
    path = pool_dir / provider / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    path.chmod(0o600)
    return path


def login(provider: str, name: str) -> dict[str, object]:
    return credential_file(new_account(provider, name, now=NOW), NOW)  # type: ignore[arg-type]


@pytest.fixture
def registry(tmp_path: Path) -> AccountRegistry:
    config = attrs.evolve(Config(), pool_dir=tmp_path)
    return AccountRegistry(config, Pool(RoutingConfig()))


def names(registry: AccountRegistry) -> set[str]:
    return {view.name for view in registry.pool.accounts(NOW)}


def test_files_added_changed_and_removed_update_the_pool(registry: AccountRegistry) -> None:
    """Every kind of edit to the pool directory reaches the routing pool on the next scan."""
    pool_dir = registry.config.pool_dir
    write(pool_dir, "claude", "work", login("claude", "work"))
    write(pool_dir, "codex", "home", login("codex", "home"))
    assert registry.scan()
    assert names(registry) == {"claude/work", "codex/home"}
    assert not registry.scan()  # nothing changed: nothing reloaded

    replacement = login("claude", "work2")
    write(pool_dir, "claude", "work", replacement)
    assert registry.scan()
    account = registry.get("claude/work")
    assert account is not None
    assert account.credentials.access_token == replacement["claudeAiOauth"]["accessToken"]  # type: ignore[index]

    (pool_dir / "codex" / "home.json").unlink()
    assert registry.scan()
    assert names(registry) == {"claude/work"}


def test_malformed_file_is_named_and_skipped(
    registry: AccountRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A broken file is reported with its reason; the other accounts keep serving."""
    pool_dir = registry.config.pool_dir
    write(pool_dir, "gemini", "good", login("gemini", "good"))
    write(pool_dir, "gemini", "broken", "{not json")
    write(pool_dir, "claude", "empty", {"claudeAiOauth": {}})
    registry.scan()
    assert names(registry) == {"gemini/good"}
    assert "not valid JSON" in registry.problems["gemini/broken"]
    assert "claude/empty" in registry.problems
    assert "gemini/broken" in caplog.text


def test_a_broken_edit_keeps_the_previous_credentials(registry: AccountRegistry) -> None:
    """A half-written change to a working file does not take the account out of the pool."""
    pool_dir = registry.config.pool_dir
    write(pool_dir, "codex", "a", login("codex", "a"))
    registry.scan()
    write(pool_dir, "codex", "a", '{"tokens": ')
    registry.scan()
    assert names(registry) == {"codex/a"}
    assert "codex/a" in registry.problems


def test_world_readable_file_loads_with_a_warning(
    registry: AccountRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    """A credential file readable by others is used, and the log says which and how to fix it."""
    path = write(registry.config.pool_dir, "claude", "open", login("claude", "open"))
    path.chmod(0o644)
    registry.scan()
    assert names(registry) == {"claude/open"}
    assert "chmod 600" in caplog.text


async def test_reload_picks_up_a_new_file_without_a_restart(
    registry: AccountRegistry, autojump_clock: trio.testing.MockClock
) -> None:
    """The reloader notices a file dropped into the pool; it rescans every second.

    (The clock cannot time the scan itself: autojump moves time while the scan's thread runs.)
    """
    assert RELOAD_INTERVAL_S <= 1.0
    async with trio.open_nursery() as nursery:
        await nursery.start(registry.serve_reload)
        write(registry.config.pool_dir, "codex", "late", login("codex", "late"))
        while "codex/late" not in names(registry):
            await trio.sleep(RELOAD_INTERVAL_S)
        nursery.cancel_scope.cancel()
