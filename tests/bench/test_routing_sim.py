"""The routing simulation, on its tiny workload: trio-pool's router against the baselines."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from bench.routing_metrics import Metrics
from bench.routing_sim import main, run_all
from bench.routing_workload import tiny_workload


@pytest.fixture(scope="module")
def tiny() -> dict[str, Metrics]:
    return run_all(tiny_workload())


@pytest.fixture(scope="module")
def overloaded() -> dict[str, Metrics]:
    return run_all(attrs.evolve(tiny_workload(seed=2), conversations=60))


def test_router_moves_conversations_far_less_than_round_robin(tiny: dict[str, Metrics]) -> None:
    """Unforced account switches (prompt-cache misses) are a fraction of round-robin's."""
    ours = tiny["trio-pool"].switches_per_100("unforced")
    theirs = tiny["round-robin"].switches_per_100("unforced")
    assert theirs > 10
    assert ours < theirs / 5


def test_router_never_refuses_while_an_account_has_headroom(
    overloaded: dict[str, Metrics],
) -> None:
    """Under overload clients do get 429s, but never while some account is below its ceiling."""
    ours = overloaded["trio-pool"]
    assert ours.client_429s > 0
    assert ours.client_429s_with_headroom == 0
    assert ours.share_before_first_429 is not None
    assert ours.share_before_first_429 >= 0.95


def test_each_rotation_takes_exactly_one_refresh_call(tiny: dict[str, Metrics]) -> None:
    """Tokens expire during the run; every refresh call rotates, and none reuses a token."""
    for metrics in tiny.values():
        assert sum(metrics.rotations.values()) > 0
        assert metrics.refresh_calls == metrics.rotations
        assert metrics.reused_refresh_tokens == 0


def test_same_seed_gives_the_same_run(tiny: dict[str, Metrics]) -> None:
    """The simulation is reproducible: a seed names a run."""
    again = run_all(tiny_workload())
    assert {k: m.as_json() for k, m in again.items()} == {k: m.as_json() for k, m in tiny.items()}


def test_main_writes_every_router_to_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The entry point prints the table and writes each router's numbers."""
    out = tmp_path / "routing.json"
    main(["--tiny", "--out", str(out)])
    document = json.loads(out.read_text())
    routers = document["scenarios"]["tiny"]["routers"]
    assert set(routers) == {"trio-pool", "round-robin", "sticky-until-fail"}
    assert "unforced switches / 100 turns" in capsys.readouterr().out


def test_a_spent_opus_week_never_refuses_sonnet_while_an_account_has_room() -> None:
    """Model windows in the simulation: with weekly Opus limits running out first, no turn
    (Opus or Sonnet) is refused while an account could serve its model."""
    specs = tuple(
        attrs.evolve(spec, cap_opus_7d=spec.cap_7d / 10, used_opus_7d=0.9)
        for spec in tiny_workload().accounts
    )
    workload = attrs.evolve(tiny_workload(seed=3), accounts=specs, opus_share=0.5)
    ours = run_all(workload)["trio-pool"]
    assert ours.client_429s > 0  # Opus did run out
    assert ours.client_429s_with_headroom == 0
