"""The model map and the routing decision (§0.3, §1), and the [translate] config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trio_pool.config import ModelRule, TranslateConfig, structure_config
from trio_pool.errors import ConfigError
from trio_pool.translate.routing import Refusal, Target, decide

BOTH = ("codex", "claude")
MAPPED = TranslateConfig(
    models={
        "claude-opus*": ModelRule("codex:gpt-6.1-sol", "high"),
        "haiku*": ModelRule("codex:gpt-6.1-mini", "low"),
    }
)


def test_claude_models_stay_on_claude_accounts() -> None:
    """claude-* from Claude Code is native: Claude accounts, untranslated."""
    target = decide("messages", "claude-opus-5-5", TranslateConfig(), BOTH)
    assert target == Target("messages", "claude", "claude-opus-5-5")
    assert isinstance(target, Target)
    assert not target.translated


def test_codex_models_from_claude_code_go_to_codex() -> None:
    """ANTHROPIC_MODEL=gpt-6.1-sol: Claude Code served by Codex accounts, translated."""
    target = decide("messages", "gpt-6.1-sol", TranslateConfig(), BOTH)
    assert isinstance(target, Target)
    assert (target.provider, target.model, target.upstream_format) == (
        "codex",
        "gpt-6.1-sol",
        "responses",
    )
    assert target.translated


def test_mapped_names_go_where_the_map_says_with_their_effort() -> None:
    """A [translate.models] glob wins, case-insensitively, with its default effort."""
    assert decide("messages", "Claude-Opus-5-5", MAPPED, BOTH) == Target(
        "messages", "codex", "gpt-6.1-sol", "high"
    )
    assert decide("messages", "haiku", MAPPED, BOTH) == Target(
        "messages", "codex", "gpt-6.1-mini", "low"
    )


def test_crossing_formats_needs_its_switch() -> None:
    """Each translated direction refuses, with the switch to set, when it is off."""
    off = TranslateConfig(claude_code_on_codex=False, chat_completions=False)
    refusal = decide("messages", "gpt-6.1-sol", off, BOTH)
    assert isinstance(refusal, Refusal)
    assert "claude_code_on_codex" in refusal.reason
    refusal = decide("responses", "claude-opus-5-5", TranslateConfig(), BOTH)
    assert isinstance(refusal, Refusal)
    assert "codex_on_claude" in refusal.reason
    refusal = decide("chat", "gpt-6.1-sol", off, BOTH)
    assert isinstance(refusal, Refusal)
    assert "chat_completions" in refusal.reason


def test_codex_on_claude_is_off_by_default_and_gates_chat_on_claude() -> None:
    """Foreign traffic on Claude accounts is opt-in, for Codex and Chat clients alike."""
    assert TranslateConfig().codex_on_claude is False
    assert isinstance(decide("chat", "claude-opus-5-5", TranslateConfig(), BOTH), Refusal)
    opted = TranslateConfig(codex_on_claude=True)
    assert decide("responses", "claude-opus-5-5", opted, BOTH) == Target(
        "responses", "claude", "claude-opus-5-5"
    )
    assert decide("chat", "claude-opus-5-5", opted, BOTH) == Target(
        "chat", "claude", "claude-opus-5-5"
    )


def test_unknown_names_stay_native_or_are_refused_for_chat() -> None:
    """An unknown model stays on the client's own provider; Chat has none: refused, 404."""
    assert decide("responses", "mystery-1", TranslateConfig(), BOTH) == Target(
        "responses", "codex", "mystery-1"
    )
    assert decide("messages", "mystery-1", TranslateConfig(), BOTH) == Target(
        "messages", "claude", "mystery-1"
    )
    refusal = decide("chat", "mystery-1", TranslateConfig(), BOTH)
    assert isinstance(refusal, Refusal)
    assert refusal.status == 404
    assert "[translate.models]" in refusal.reason


def test_a_provider_without_accounts_is_refused_not_swapped() -> None:
    """Never silently: no Codex accounts means a refusal, not a Claude fallback."""
    refusal = decide("messages", "gpt-6.1-sol", TranslateConfig(), ("claude",))
    assert isinstance(refusal, Refusal)
    assert refusal.status == 503


def load(tmp_path: Path, translate: dict[str, Any]) -> TranslateConfig:
    return structure_config({"translate": translate}, base_dir=tmp_path).translate


def test_translate_config_section_loads(tmp_path: Path) -> None:
    """[translate] and [translate.models] load from TOML-shaped data."""
    config = load(
        tmp_path,
        {
            "codex_on_claude": True,
            "models": {"opus*": {"to": "codex:gpt-6.1-sol", "effort": "high"}},
        },
    )
    assert config.codex_on_claude is True
    assert config.models == {"opus*": ModelRule("codex:gpt-6.1-sol", "high")}
    assert structure_config({}, base_dir=tmp_path).translate == TranslateConfig()


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({"to": "gpt-6.1-sol"}, 'translate.models."x*".to'),
        ({"to": "gemini:x"}, 'translate.models."x*".to'),
        ({"to": "codex:m", "effort": "huge"}, 'translate.models."x*".effort'),
    ],
    ids=["no-provider", "unknown-provider", "bad-effort"],
)
def test_bad_model_rules_are_config_errors_naming_the_key(
    tmp_path: Path, rule: dict[str, Any], problem: str
) -> None:
    """A malformed rule is refused with its key path."""
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"models": {"x*": rule}})
    assert any(p.startswith(problem) for p in caught.value.problems)


def test_unknown_translate_keys_are_refused(tmp_path: Path) -> None:
    """A typo in [translate] is an error, like every other section."""
    with pytest.raises(ConfigError):
        load(tmp_path, {"claude_code_on_codx": True})
