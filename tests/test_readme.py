"""The README's configuration reference is a valid config.toml with the defaults it claims."""

from __future__ import annotations

import tomllib
from pathlib import Path

import attrs

from trio_pool.config import Config, structure_config

README = Path(__file__).resolve().parents[1] / "README.md"


def reference_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration reference", 1)[1]
    return section.split("```toml\n", 1)[1].split("```", 1)[0]


def test_config_reference_loads_and_matches_the_defaults(tmp_path: Path) -> None:
    """Every key in the README is accepted, and each value shown is the real default."""
    raw = tomllib.loads(reference_block())
    raw.pop("accounts")  # an example, not a default
    config = structure_config(raw, base_dir=tmp_path)
    defaults = structure_config({}, base_dir=tmp_path)
    assert attrs.evolve(config, accounts={}) == defaults
    assert isinstance(config, Config)
