"""Where a request goes: (client format, requested model) -> a provider and model, or a
reason to refuse. Never silent (translation.md §0.3, §1).

- A ``[translate.models]`` glob that matches wins (first match in file order): that is how
  a user says "send my opus to Codex".
- Otherwise ``claude-*`` stays on Claude accounts and Codex's models (``gpt-*``,
  ``codex*``, ``o<digit>*``) go to Codex accounts.
- Any other name stays on the client's own provider (a Codex or Claude Code client is
  never refused for a model name we do not know); Chat Completions has no provider of its
  own, so an unknown name there is refused with a hint.
- Crossing formats needs its switch: ``claude_code_on_codex``, ``codex_on_claude``
  (off by default: foreign traffic on Claude subscriptions risks the account, §0.2; it
  also gates Chat Completions on Claude accounts), ``chat_completions``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Literal

import attrs

if TYPE_CHECKING:  # only for annotations: the translators import nothing at run time
    from trio_pool.config import TranslateConfig

ClientFormat = Literal["messages", "responses", "chat"]
Provider = Literal["codex", "claude"]

NATIVE_FORMAT: dict[str, ClientFormat] = {"codex": "responses", "claude": "messages"}
NATIVE_PROVIDER: dict[str, Provider] = {"responses": "codex", "messages": "claude"}
_CODEX_MODEL = re.compile(r"^(gpt-|codex|o\d)", re.IGNORECASE)
_CLAUDE_MODEL = re.compile(r"^claude-", re.IGNORECASE)


@attrs.frozen
class Target:
    """Serve the request on ``provider`` accounts as ``model``."""

    client_format: ClientFormat
    provider: Provider
    model: str
    effort: str | None = None  # the default effort of the matching model rule

    @property
    def upstream_format(self) -> ClientFormat:
        return NATIVE_FORMAT[self.provider]

    @property
    def translated(self) -> bool:
        return self.client_format != self.upstream_format


@attrs.frozen
class Refusal:
    """Not served; ``reason`` is for the client, ``status`` the HTTP status to answer."""

    reason: str
    status: int


def decide(
    client_format: ClientFormat,
    requested_model: str,
    config: TranslateConfig,
    available_providers: Collection[str],
) -> Target | Refusal:
    target = _map_model(client_format, requested_model, config)
    if isinstance(target, Refusal):
        return target
    refusal = _switch_refusal(target, config)
    if refusal is not None:
        return refusal
    if target.provider not in available_providers:
        return Refusal(
            f"model {requested_model!r} is served by {target.provider} accounts and the pool "
            f"has none available",
            503,
        )
    return target


def _map_model(
    client_format: ClientFormat, requested: str, config: TranslateConfig
) -> Target | Refusal:
    lowered = requested.lower()
    for glob, rule in config.models.items():
        if fnmatch.fnmatchcase(lowered, glob.lower()):
            provider, _, model = rule.to.partition(":")
            if provider in ("codex", "claude"):
                chosen: Provider = "codex" if provider == "codex" else "claude"
                return Target(client_format, chosen, model, rule.effort)
    if _CLAUDE_MODEL.match(requested):
        return Target(client_format, "claude", requested)
    if _CODEX_MODEL.match(requested):
        return Target(client_format, "codex", requested)
    native = NATIVE_PROVIDER.get(client_format)
    if native is not None:
        return Target(client_format, native, requested)
    return Refusal(
        f"model {requested!r} is neither a Codex (gpt-*) nor a Claude (claude-*) model; map "
        f"it under [translate.models] in config.toml",
        404,
    )


def _switch_refusal(target: Target, config: TranslateConfig) -> Refusal | None:
    if not target.translated:
        return None
    if target.client_format == "chat" and not config.chat_completions:
        return Refusal("Chat Completions are off: set [translate] chat_completions = true", 400)
    codex_for_claude_code = target.provider == "codex" and target.client_format == "messages"
    if codex_for_claude_code and not config.claude_code_on_codex:
        return Refusal(
            f"model {target.model!r} is served by Codex accounts; set [translate] "
            "claude_code_on_codex = true to allow it",
            400,
        )
    if target.provider == "claude" and not config.codex_on_claude:
        return Refusal(
            f"model {target.model!r} is served by Claude accounts, which only take Claude "
            "Code's own traffic unless [translate] codex_on_claude = true (an account risk: "
            "Anthropic may ban subscriptions used outside Claude Code)",
            400,
        )
    return None
