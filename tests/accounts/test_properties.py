"""Hypothesis: random operation sequences against a small reference model of the rules."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tests.accounts.helpers import FIVE_H, T0, WEEK, key, lease, make_pool, reading, serve
from trio_pool.accounts.cooldown import QUOTA_FALLBACK_MAX_S, QUOTA_MIN_S
from trio_pool.accounts.pool import Exhausted, Lease
from trio_pool.accounts.routing import SAFE_HEADROOM, SWITCH_MARGIN
from trio_pool.providers.base import (
    AccountAction,
    Outcome,
    OutcomeKind,
    QuotaReading,
    QuotaWindow,
)

NAMES = ("codex/a", "codex/b", "codex/c")
LENGTHS = {"5h": FIVE_H, "7d": WEEK}
CEILINGS = {"5h": 0.98, "7d": 0.99}
KEYS = (None, "s0", "s1", "h0", "h1")  # "h*" keys are hard
# Longest backoff each kind can cause, and the shortest it must last.
ACTION = OutcomeKind.ACCOUNT_ACTION
BACKOFF_MAX = {
    OutcomeKind.THROTTLED: 30.0,
    OutcomeKind.AUTH: 60.0,
    OutcomeKind.FORBIDDEN: 60.0,
    OutcomeKind.TRANSIENT: 2.0,
}
BACKOFF_MIN = {
    OutcomeKind.THROTTLED: 2.0,
    OutcomeKind.AUTH: 60.0,
    OutcomeKind.FORBIDDEN: 60.0,
    OutcomeKind.TRANSIENT: 2.0,
}

offsets = st.sampled_from([-10.0, 0.0, 5.0, 100.0, 3000.0, 20000.0])
windows: st.SearchStrategy[tuple[str, float, float | None]] = st.builds(
    lambda name, used, off: (name, used, off),
    st.sampled_from(sorted(LENGTHS)),
    st.sampled_from([0.0, 0.3, 0.9, 0.975, 0.98, 0.985, 0.99, 1.0]),
    st.none() | offsets,
)
RawWindow = tuple[str, float, float | None]
RawReading = tuple[tuple[RawWindow, ...], bool, float | None]

readings: st.SearchStrategy[RawReading] = st.builds(
    lambda ws, exhausted, off: (tuple(ws), exhausted, off),
    st.lists(windows, max_size=2, unique_by=lambda w: w[0]),
    st.booleans(),
    st.none() | offsets,
)


@attrs.define
class Ref:
    """What the rules promise about one account, as lower and upper bounds."""

    disabled: bool = False
    relogin: bool = False
    action: bool = False
    # name -> (used, when the reading stops holding, the reset time if the upstream gave one)
    windows: dict[str, tuple[float, float, float | None]] = attrs.field(factory=dict)
    floor: float = 0.0  # latest reset time the upstream gave (cleared by a reading with room)
    cool_max: float = 0.0  # the quota cooldown surely ends by then
    backoff_min: float = 0.0
    backoff_max: float = 0.0

    def over_ceiling(self, now: float) -> bool:
        return any(
            now < deadline and used >= CEILINGS[name]
            for name, (used, deadline, _) in self.windows.items()
        )


class PoolMachine(RuleBasedStateMachine):
    """Never leases a cooling, backing-off, disabled, re-login or over-ceiling account; a
    cooldown never ends before the upstream's reset; Exhausted only when none is eligible;
    a pin (sticky = "always", or a hard key) moves only when its account is unusable."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = make_pool("a", "b", "c", sticky="always", pin_idle_ttl_s=3600.0)
        self.now = T0
        self.refs = {n: Ref() for n in NAMES}
        self.leases: list[Lease] = []
        self.pins: dict[str, tuple[str, float]] = {}

    @initialize(priorities=st.lists(st.integers(0, 1), min_size=3, max_size=3))
    def setup(self, priorities: list[int]) -> None:
        for name, priority in zip(NAMES, priorities, strict=True):
            self.pool.set_account(name, "codex", priority=priority)

    def _reading(self, raw: RawReading) -> QuotaReading:
        ws, exhausted, off = raw
        return QuotaReading(
            windows=tuple(
                QuotaWindow(n, u, LENGTHS[n], None if o is None else self.now + o) for n, u, o in ws
            ),
            exhausted=exhausted,
            resets_at=None if off is None else self.now + off,
        )

    def _merge(self, ref: Ref, reading: QuotaReading) -> None:
        for w in reading.windows:
            deadline = w.resets_at if w.resets_at is not None else self.now + LENGTHS[w.name]
            ref.windows[w.name] = (w.used, deadline, w.resets_at)

    def _cool(self, ref: Ref, given: list[float | None]) -> None:
        times = [t for t in given if t is not None]
        times += [
            given
            for n, (used, deadline, given) in ref.windows.items()
            if given is not None and self.now < deadline and used >= CEILINGS[n]
        ]
        ref.floor = max([ref.floor, *times])
        ref.cool_max = max([ref.cool_max, *times, self.now + QUOTA_FALLBACK_MAX_S + QUOTA_MIN_S])

    def _apply_reading(self, ref: Ref, reading: QuotaReading) -> None:
        self._merge(ref, reading)
        if reading.exhausted:
            self._cool(ref, [reading.resets_at])
        elif reading.windows and not any(
            w.used >= CEILINGS[w.name] and (w.resets_at is None or w.resets_at > self.now)
            for w in reading.windows
        ):
            ref.floor = ref.cool_max = 0.0

    def _eligible_by_ref(self, name: str) -> bool:
        ref = self.refs[name]
        return not (
            ref.disabled
            or ref.relogin
            or ref.action
            or ref.over_ceiling(self.now)
            or self.now < ref.cool_max
            or self.now < ref.backoff_max
        )

    @rule(dt=st.sampled_from([0.0, 1.0, 2.0, 30.0, 61.0, 300.0, 3601.0, 20000.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(k=st.sampled_from(KEYS), exclude=st.sets(st.sampled_from(NAMES)))
    def choose(self, k: str | None, exclude: set[str]) -> None:
        conv = None if k is None else key(k, hard=k.startswith("h"))
        before = {v.name: v.state for v in self.pool.accounts(self.now)}
        result = self.pool.choose("codex", conv, self.now, exclude=frozenset(exclude))
        if isinstance(result, Exhausted):
            # Only when no account is eligible: none the rules say must be free is left.
            assert not [n for n in NAMES if n not in exclude and self._eligible_by_ref(n)]
            assert all(before[n] != "ok" or n in exclude for n in NAMES)
            return
        name = result.account
        ref = self.refs[name]
        assert name not in exclude
        assert before[name] == "ok"
        assert not ref.disabled
        assert not ref.relogin
        assert not ref.action
        assert not ref.over_ceiling(self.now)
        assert self.now >= ref.floor, "cooldown ended before the upstream's reset time"
        assert self.now >= ref.backoff_min
        if k is not None:
            pin = self.pins.get(k)
            if pin is not None and self.now - pin[1] <= 3600.0:
                held = pin[0]
                # sticky = "always" and hard keys: moves only when the account is unusable.
                stays = before[held] == "ok" and held not in exclude
                assert (name == held) == stays
                assert result.pinned == stays
            self.pins[k] = (name, self.now)
        self.leases.append(result)

    @precondition(lambda self: bool(self.leases))
    @rule(
        index=st.integers(0, 10),
        kind=st.sampled_from(list(OutcomeKind)),
        retry=st.none() | offsets,
        quota=st.none() | readings,
    )
    def report(
        self, index: int, kind: OutcomeKind, retry: float | None, quota: RawReading | None
    ) -> None:
        leased = self.leases.pop(index % len(self.leases))
        reading = None if quota is None else self._reading(quota)
        retry_at = None if retry is None else self.now + retry
        action = AccountAction("validation_required", "verify") if kind is ACTION else None
        self.pool.report(leased, Outcome(kind, 429, "test", reading, retry_at, action), self.now)
        ref = self.refs[leased.account]
        ref.action = ref.action or action is not None
        if kind is OutcomeKind.QUOTA:
            if reading is not None:
                self._merge(ref, reading)
            self._cool(ref, [retry_at, None if reading is None else reading.resets_at])
            return
        if reading is not None:
            if kind is OutcomeKind.THROTTLED:
                self._merge(ref, reading)
            else:
                self._apply_reading(ref, reading)
        if kind is OutcomeKind.OK:
            ref.backoff_min = ref.backoff_max = 0.0
        elif kind in BACKOFF_MAX:
            ref.backoff_min = max(ref.backoff_min, self.now + BACKOFF_MIN[kind])
            ref.backoff_max = max(ref.backoff_max, self.now + BACKOFF_MAX[kind])

    @rule(name=st.sampled_from(NAMES), raw=readings)
    def observe(self, name: str, raw: RawReading) -> None:
        reading = self._reading(raw)
        self.pool.observe(name, reading, self.now)
        self._apply_reading(self.refs[name], reading)

    @rule(name=st.sampled_from(NAMES), disabled=st.booleans(), priority=st.integers(0, 1))
    def settings(self, name: str, disabled: bool, priority: int) -> None:
        self.pool.set_account(name, "codex", priority=priority, disabled=disabled)
        self.refs[name].disabled = disabled

    @rule(name=st.sampled_from(NAMES), relogin=st.booleans())
    def relogin(self, name: str, relogin: bool) -> None:
        if relogin:
            self.pool.set_needs_relogin(name, "invalid_grant")
        else:
            self.pool.clear_needs_relogin(name)
        self.refs[name].relogin = relogin

    @rule(name=st.sampled_from(NAMES))
    def clear_action(self, name: str) -> None:
        self.pool.clear_action(name)
        self.refs[name].action = False

    @invariant()
    def views_agree(self) -> None:
        for view in self.pool.accounts(self.now):
            assert view.in_flight == sum(1 for le in self.leases if le.account == view.name)
            ref = self.refs[view.name]
            if self._eligible_by_ref(view.name):
                assert view.state == "ok", view.state_reason
            if view.state == "ok":
                assert self.now >= ref.floor
                assert self.now >= ref.backoff_min
            elif view.state in ("cooling", "backoff"):
                assert view.state_until is not None
                assert view.state_until > self.now
                assert view.state_until >= ref.floor


PoolMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestPoolMachine = PoolMachine.TestCase


@settings(max_examples=150, deadline=None)
@given(
    pinned_used=st.floats(0.0, 0.97),
    other_used=st.floats(0.0, 0.97),
    strength=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
)
def test_auto_pin_moves_only_when_clearly_worse(
    pinned_used: float, other_used: float, strength: float
) -> None:
    """sticky=auto: a soft pin moves iff its own room is short (below SAFE_HEADROOM scaled by
    the strength) and the other account's headroom is better by the margin."""
    pool = make_pool("a", "b", sticky_strength=strength)
    assert serve(pool, T0, key("conv")) == "codex/a"
    pool.observe("codex/a", reading(pinned_used), T0 + 1)
    pool.observe("codex/b", reading(other_used), T0 + 1)
    chosen = lease(pool.choose("codex", key("conv"), T0 + 2))
    gap = (1 - other_used) - (1 - pinned_used)
    short = strength == 0 or (1 - pinned_used) < SAFE_HEADROOM / strength
    near_boundary = abs(gap - SWITCH_MARGIN * strength) < 1e-6 or (
        strength > 0 and abs((1 - pinned_used) - SAFE_HEADROOM / strength) < 1e-6
    )
    if not near_boundary:  # exactly at a boundary: either is fine
        assert (chosen.account == "codex/b") == (short and gap > SWITCH_MARGIN * strength)
