from __future__ import annotations

import pytest

from tests.providers.samples import head
from trio_pool.providers import PROVIDER_REGISTRY, find_route
from trio_pool.providers.base import PROVIDERS, ProviderName

UPSTREAMS: dict[ProviderName, dict[str, str]] = {
    "codex": {"upstream": "http://127.0.0.1:1/codex", "backend": "http://127.0.0.1:1/backend"},
    "claude": {"upstream": "http://127.0.0.1:2"},
    "gemini": {"upstream": "http://127.0.0.1:3"},
}


def test_registry_holds_every_provider_under_its_name() -> None:
    """The explicit registry has one provider per name, in PROVIDERS order."""
    assert tuple(PROVIDER_REGISTRY) == PROVIDERS
    assert all(p.name == name for name, p in PROVIDER_REGISTRY.items())


@pytest.mark.parametrize(
    ("method", "target", "headers", "provider"),
    [
        ("GET", "/v1/models", (("anthropic-version", "2023-06-01"),), "claude"),
        ("GET", "/v1/models?client_version=1", (), "codex"),
        ("POST", "/v1/responses", (), "codex"),
        ("POST", "/v1/messages?beta=true", (), "claude"),
        ("POST", "/v1internal:streamGenerateContent?alt=sse", (), "gemini"),
        ("GET", "/nowhere", (), None),
    ],
)
def test_find_route_picks_the_provider(
    method: str, target: str, headers: tuple[tuple[str, str], ...], provider: str | None
) -> None:
    """find_route asks each provider; /v1/models is Claude's only with anthropic-version."""
    route = find_route(head(method, target, *headers), UPSTREAMS)
    assert (route.provider if route else None) == provider
