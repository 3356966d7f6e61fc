"""The providers trio-pool knows, as an explicit registry (static imports for the binary)."""

from __future__ import annotations

from collections.abc import Mapping

from trio_pool.providers.base import PROVIDERS, Provider, ProviderName, Route
from trio_pool.providers.claude import ClaudeProvider
from trio_pool.providers.codex import CodexProvider
from trio_pool.providers.gemini import GeminiProvider
from trio_pool.server.messages import RequestHead

CODEX = CodexProvider()
CLAUDE = ClaudeProvider()
GEMINI = GeminiProvider()  # typed: it also has the loadCodeAssist project look-up

PROVIDER_REGISTRY: dict[ProviderName, Provider] = {
    "codex": CODEX,
    "claude": CLAUDE,
    "gemini": GEMINI,
}


def find_route(
    head: RequestHead, upstreams_by_provider: Mapping[ProviderName, Mapping[str, str]]
) -> Route | None:
    """The first provider (in PROVIDERS order) that accepts this request, or None.

    The path tables do not overlap: the one shared path, ``GET /v1/models``, is Claude's
    when an ``anthropic-version`` header is present and Codex's otherwise.
    """
    for name in PROVIDERS:
        route = PROVIDER_REGISTRY[name].route(head, upstreams_by_provider[name])
        if route is not None:
            return route
    return None


def guess_provider(head: RequestHead) -> ProviderName:
    """Whose error shape an unknown path gets: by path prefix and Anthropic headers."""
    if head.path.startswith("/v1internal"):
        return "gemini"
    if head.get("anthropic-version") is not None or head.path.startswith("/v1/messages"):
        return "claude"
    return "codex"
