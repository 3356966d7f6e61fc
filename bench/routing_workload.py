"""The routing simulation's workload: accounts with different plans and resets, and bursts of
conversations. Everything is drawn from one seeded ``random.Random``, so a seed names a run.

Units: one quota unit is roughly one average message; a turn costs more as its conversation's
context grows. Capacities follow the Claude plans' rough ratios (Pro 1x, Max 5x, Max 20x).
"""

from __future__ import annotations

import random

import attrs

from trio_pool.testing import issue
from trio_pool.testing.accounts import SimAccount, SimWindow

T0 = 1_700_000_000.0  # virtual start of every run (unix seconds)
HOUR = 3600.0
FIVE_H = 5 * HOUR
WEEK = 7 * 24 * HOUR
TOKEN_LIFETIME_S = 8 * HOUR  # Claude.ai OAuth access tokens live about 8 hours


@attrs.frozen
class AccountSpec:
    name: str
    plan: str
    cap_5h: float
    cap_7d: float
    used_5h: float = 0.0  # fraction already used at T0
    reset_5h_h: float | None = None  # hours after T0; None: the window starts at first use
    used_7d: float = 0.0
    reset_7d_h: float = 24 * 7
    token_expires_h: float = TOKEN_LIFETIME_S / HOUR
    # A weekly Opus limit (a model window: it stops Opus only), when given.
    cap_opus_7d: float | None = None
    used_opus_7d: float = 0.0

    def build(self) -> SimAccount:
        """A fresh simulated account in this state at T0."""
        five = SimWindow("5h", FIVE_H, self.cap_5h, self.used_5h * self.cap_5h)
        if self.reset_5h_h is not None:
            five.resets_at = T0 + self.reset_5h_h * HOUR
        week = SimWindow("7d", WEEK, self.cap_7d, self.used_7d * self.cap_7d)
        week.resets_at = T0 + self.reset_7d_h * HOUR
        windows = [five, week]
        if self.cap_opus_7d is not None:
            opus = SimWindow(
                "7d_opus", WEEK, self.cap_opus_7d, self.used_opus_7d * self.cap_opus_7d
            )
            opus.resets_at = week.resets_at
            opus.model = "opus"
            windows.append(opus)
        return issue.new_account(
            "claude",
            self.name,
            now=T0,
            plan=self.plan,
            windows=windows,
            expires_in_s=self.token_expires_h * HOUR,
        )


# Six accounts: two of each plan, staggered 5-hour resets, weekly windows from nearly fresh to
# nearly spent (one of them resets in 6 hours: its quota is lost unless used first).
DEFAULT_ACCOUNTS: tuple[AccountSpec, ...] = (
    AccountSpec("pro-a", "pro", 40, 400, 0.2, 1.5, 0.40, 84, 1.0),
    AccountSpec("pro-b", "pro", 40, 400, 0.0, None, 0.85, 20, 3.0),
    AccountSpec("max5-a", "max5x", 200, 2000, 0.5, 0.5, 0.60, 48, 5.0),
    AccountSpec("max5-b", "max5x", 200, 2000, 0.1, 4.0, 0.93, 6, 0.2),
    AccountSpec("max20-a", "max20x", 800, 8000, 0.0, None, 0.30, 120, 7.0),
    AccountSpec("max20-b", "max20x", 800, 8000, 0.7, 2.0, 0.75, 30, 2.5),
)

# Three small accounts for the fast test.
TINY_ACCOUNTS: tuple[AccountSpec, ...] = (
    AccountSpec("a", "pro", 60, 600, 0.3, 1.0, 0.5, 48, 0.5),
    AccountSpec("b", "max5x", 150, 1500, 0.0, None, 0.9, 10, 1.0),
    AccountSpec("c", "max5x", 150, 1500, 0.6, 3.0, 0.2, 100, 1.5),
)


@attrs.frozen
class TurnPlan:
    gap_s: float  # the user's pause before sending this turn (after the previous one ended)
    duration_s: float  # how long the answer streams
    cost: float  # quota units the turn uses


@attrs.frozen
class ConversationPlan:
    session: str  # the Claude Code session id (x-claude-code-session-id)
    start: float  # unix seconds of the first turn
    turns: tuple[TurnPlan, ...]
    model: str | None = None  # every turn's model (None: not modelled)


@attrs.frozen
class Workload:
    """How much traffic, and how it arrives."""

    seed: int = 1
    conversations: int = 180
    min_turns: int = 20
    max_turns: int = 100
    bursts: int = 9  # conversations arrive in this many bursts...
    burst_every_h: float = 4.5  # ...this far apart...
    burst_spread_s: float = 900.0  # ...each spread over this long
    mean_gap_s: float = 60.0  # think time between turns
    long_pause_p: float = 0.03  # chance of a coffee break before a turn
    long_pause_s: tuple[float, float] = (1200.0, 5400.0)
    duration_s: tuple[float, float] = (5.0, 60.0)
    accounts: tuple[AccountSpec, ...] = DEFAULT_ACCOUNTS
    # Share of conversations on Opus (the rest on Sonnet); 0: models not modelled (and no
    # extra random draws, so the other scenarios keep their exact numbers).
    opus_share: float = 0.0

    def plan(self) -> list[ConversationPlan]:
        rng = random.Random(self.seed)
        plans = []
        for index in range(self.conversations):
            burst = index % max(self.bursts, 1)
            start = T0 + burst * self.burst_every_h * HOUR + rng.uniform(0, self.burst_spread_s)
            count = rng.randint(self.min_turns, self.max_turns)
            turns = tuple(self._turn(rng, i) for i in range(count))
            model = None
            if self.opus_share > 0:
                model = OPUS if rng.random() < self.opus_share else SONNET
            plans.append(ConversationPlan(f"session-{self.seed}-{index:04d}", start, turns, model))
        return plans

    def _turn(self, rng: random.Random, index: int) -> TurnPlan:
        if index == 0:
            gap = 0.0
        elif rng.random() < self.long_pause_p:
            gap = rng.uniform(*self.long_pause_s)
        else:
            gap = rng.expovariate(1.0 / self.mean_gap_s)
        # The context grows, so later turns re-read more and cost more.
        cost = (0.6 + index / 60.0) * rng.uniform(0.5, 1.5)
        return TurnPlan(gap, rng.uniform(*self.duration_s), cost)


def overload_workload(seed: int = 1) -> Workload:
    """More demand than the pool can serve over two days: every router refuses some turns."""
    return Workload(seed=seed, conversations=200, bursts=10, burst_every_h=4.0)


OPUS, SONNET = "claude-opus-4-1", "claude-sonnet-4-5"

# The default accounts with weekly Opus limits (a fifth of the weekly capacity), two of them
# nearly spent: Opus runs out long before the accounts do.
MODEL_ACCOUNTS: tuple[AccountSpec, ...] = tuple(
    attrs.evolve(spec, cap_opus_7d=spec.cap_7d / 5, used_opus_7d=used)
    for spec, used in zip(DEFAULT_ACCOUNTS, (0.5, 0.97, 0.3, 0.9, 0.1, 0.6), strict=True)
)


def model_window_workload(seed: int = 1) -> Workload:
    """Half the conversations on Opus, half on Sonnet, over accounts with a weekly Opus cap."""
    return Workload(seed=seed, accounts=MODEL_ACCOUNTS, opus_share=0.5)


def tiny_workload(seed: int = 1) -> Workload:
    """A small run for tests: three accounts, 24 conversations, a few hundred turns."""
    return Workload(
        seed=seed,
        conversations=24,
        min_turns=10,
        max_turns=30,
        bursts=2,
        burst_every_h=3.0,
        accounts=TINY_ACCOUNTS,
    )
