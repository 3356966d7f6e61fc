"""A quick, seeded routing simulation: 3 equal accounts, 30 conversations, 300 requests."""

from __future__ import annotations

import random

import attrs

from tests.accounts.helpers import FIVE_H, T0, key, reading
from trio_pool.accounts.pool import Exhausted, Pool
from trio_pool.accounts.routing import SWITCH_MARGIN
from trio_pool.config import RoutingConfig
from trio_pool.providers.base import Outcome, OutcomeKind

NAMES = ("codex/a", "codex/b", "codex/c")
RESET = T0 + FIVE_H


@attrs.define
class Run:
    used: dict[str, float]
    homes: dict[str, list[str]]  # conversation -> accounts in the order it used them
    unforced_moves: list[str]
    exhausted_with_room: list[str]
    served: int


def simulate(cost: float, *, seed: int = 7, requests: int = 300) -> Run:
    """Serve requests sequentially; each one uses `cost` of its account's 5h window."""
    pool = Pool(RoutingConfig())
    for name in NAMES:
        pool.set_account(name, "codex")
    rng = random.Random(seed)
    used = dict.fromkeys(NAMES, 0.0)
    run = Run(used, {}, [], [], 0)
    for step in range(requests):
        now = T0 + 10.0 * step
        conv = f"conv-{rng.randrange(30)}"
        states = {v.name: v.state for v in pool.accounts(now)}
        result = pool.choose("codex", key(conv), now)
        if isinstance(result, Exhausted):
            if any(u < 0.98 for u in used.values()):
                run.exhausted_with_room.append(conv)
            continue
        history = run.homes.setdefault(conv, [])
        if history and history[-1] != result.account:
            before = history[-1]
            boost = 2.0 - (RESET - now) / FIVE_H  # the same reset-soon factor for all three
            gap = ((1 - used[result.account]) - (1 - used[before])) * boost
            if states[before] == "ok" and gap <= SWITCH_MARGIN:
                run.unforced_moves.append(conv)
        history.append(result.account)
        used[result.account] += cost
        quota = reading(used[result.account], resets_at=RESET)
        pool.report(result, Outcome(OutcomeKind.OK, 200, quota=quota), now)
        run.served += 1
    return run


def test_light_load_keeps_every_conversation_on_one_account() -> None:
    """Below the ceilings, no conversation moves unless clearly worse, and load spreads."""
    run = simulate(cost=0.004)
    assert run.served == 300
    assert run.unforced_moves == []
    moved = [c for c, h in run.homes.items() if len(set(h)) > 1]
    assert len(moved) <= 3, moved
    assert max(run.used.values()) - min(run.used.values()) <= SWITCH_MARGIN + 0.05
    assert all(u > 0.25 for u in run.used.values())


def test_heavy_load_fills_every_account_before_refusing() -> None:
    """Moves happen only when forced or clearly worse, and no account is pushed past its
    ceiling while another still has room."""
    run = simulate(cost=0.011)
    assert run.unforced_moves == []
    assert run.exhausted_with_room == []
    assert all(0.97 <= u < 0.98 + 0.011 for u in run.used.values())
    assert run.served >= 265  # 3 accounts x 98 % / 1.1 % each


def test_simulation_is_deterministic() -> None:
    """The same seed gives the same routing, request for request."""
    assert simulate(cost=0.006, seed=3) == simulate(cost=0.006, seed=3)
