"""The needs-action state: an account its owner must fix is never routed, counted or lost."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import trio

from tests.accounts.helpers import T0, exhausted, lease, make_pool, outcome, reading, state_of
from trio_pool import clock
from trio_pool.accounts.model import AccountAction
from trio_pool.accounts.pool import Pool
from trio_pool.config import Config, RoutingConfig
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.front import health_document
from trio_pool.providers.base import OutcomeKind
from trio_pool.state.store import StateStore
from trio_pool.state.sync import StateSync
from trio_pool.status import render_status
from trio_pool.testing.issue import new_account
from trio_pool.testing.pool_files import credential_file

A, B = "codex/a", "codex/b"
VALIDATE = AccountAction(
    "validation_required", "Verify your account to continue.", "https://example.test/verify"
)


def test_an_account_needing_action_is_never_leased() -> None:
    """Whatever its quota, a needs-action account is skipped; with no other, none is leased
    and no retry time is promised (only the user can end it)."""
    pool = make_pool("a", "b")
    pool.set_action(A, VALIDATE)
    for step in range(5):
        assert lease(pool.choose("codex", None, T0 + step)).account == B
    pool.set_action(B, AccountAction("no_codex_plan", "This plan does not include Codex."))
    refused = exhausted(pool.choose("codex", None, T0 + 10))
    assert refused.retry_at is None
    assert dict(refused.reasons)[A].startswith("action needed (validation_required)")
    assert pool.next_change("codex", T0 + 10) is None


def test_an_account_action_outcome_fails_over_and_is_stamped() -> None:
    """A classifier's ACCOUNT_ACTION outcome benches the account with the upstream's words."""
    pool = make_pool("a", "b")
    first = lease(pool.choose("codex", None, T0))
    pool.report(first, outcome(OutcomeKind.ACCOUNT_ACTION, status=403, action=VALIDATE), T0)
    view = next(v for v in pool.accounts(T0 + 60) if v.name == first.account)
    assert view.state == "needs_action"
    assert view.action == attrs.evolve(VALIDATE, since_at=T0)
    assert "https://example.test/verify" in view.state_reason
    other = lease(pool.choose("codex", None, T0 + 1))
    assert other.account != first.account


def test_an_account_needing_action_is_not_capacity() -> None:
    """The pool's usage figures count only accounts that could serve."""
    pool = make_pool("a", "b")
    pool.observe(A, reading(1.0, resets_at=T0 + 3600), T0)
    pool.observe(B, reading(0.2, resets_at=T0 + 3600), T0)
    pool.set_action(A, VALIDATE)
    usage = pool.pool_usage("codex", T0)
    assert usage.accounts == 1
    assert usage.windows[0].used == 0.2


def test_clear_action_by_kind_leaves_other_kinds() -> None:
    """The code that set an action clears only its own kind once the condition is gone."""
    pool = make_pool("a")
    pool.set_action(A, VALIDATE)
    pool.clear_action(A, "ineligible")
    assert state_of(pool, A, T0) == "needs_action"
    pool.clear_action(A, "validation_required")
    assert state_of(pool, A, T0) == "ok"


async def test_an_action_is_persisted_and_dropped_for_a_newer_file(tmp_path: Path) -> None:
    """state.db keeps the action across a restart; a verdict about an older credential file
    is not taken, and clearing it reaches the other process."""
    stores: list[StateStore] = []

    async def process(file_ns: int) -> StateSync:
        store = await StateStore.open(tmp_path)
        stores.append(store)
        sync = StateSync(store, make_pool("a", "b"), lambda _name: file_ns)
        await sync.sync_once()
        return sync

    try:
        with trio.fail_after(10):
            one = await process(1)
            one.pool.set_action(A, attrs.evolve(VALIDATE, since_at=T0))
            await one.sync_once()
            restarted = await process(1)
            assert state_of(restarted.pool, A, clock.now()) == "needs_action"
            assert restarted.pool.action_of(A) == attrs.evolve(VALIDATE, since_at=T0)
            assert state_of((await process(2)).pool, A, clock.now()) == "ok"
            restarted.pool.clear_action(A)
            await restarted.sync_once()
            await one.sync_once()
            assert state_of(one.pool, A, clock.now()) == "ok"
    finally:
        for store in stores:
            await store.aclose()


def test_a_changed_pool_file_clears_the_action(tmp_path: Path) -> None:
    """Editing the account's file (a new login, a project added) ends its action."""
    registry = AccountRegistry(attrs.evolve(Config(), pool_dir=tmp_path), Pool(RoutingConfig()))
    path = tmp_path / "gemini" / "work.json"
    path.parent.mkdir()
    document = credential_file(new_account("gemini", "work", now=T0), T0)
    path.write_text(json.dumps(document))
    registry.scan()
    registry.pool.set_action("gemini/work", AccountAction("project_required", "Set a project."))
    assert not registry.scan()
    assert state_of(registry.pool, "gemini/work", T0) == "needs_action"
    path.write_text(json.dumps({**document, "project_id": "my-project"}))
    assert registry.scan()
    assert state_of(registry.pool, "gemini/work", T0) == "ok"


async def test_status_and_healthz_show_the_action_with_its_link(tmp_path: Path) -> None:
    """/healthz carries the action (kind, message, link) and `status` prints message and link."""
    pool = make_pool("a", "b")
    pool.set_action(A, VALIDATE)
    registry = AccountRegistry(attrs.evolve(Config(), pool_dir=tmp_path), pool)
    document = json.loads(json.dumps(health_document(pool, registry)))
    account = next(a for a in document["accounts"] if a["name"] == A)
    assert account["state"] == "needs_action"
    assert account["action"]["kind"] == "validation_required"
    assert account["action"]["link"] == "https://example.test/verify"
    text = render_status(document)
    line = next(line for line in text.splitlines() if line.startswith(A))
    assert "needs-action" in line
    assert "Verify your account to continue." in line
    assert "https://example.test/verify" in line
