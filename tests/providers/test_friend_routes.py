"""What a pool key may reach upstream (pure): the CLIs' own paths and methods only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trio_pool.config import structure_config
from trio_pool.providers import find_route
from trio_pool.providers.friend_routes import friend_may_use
from trio_pool.proxy.websocket import realtime_route
from trio_pool.server.messages import RequestHead
from trio_pool.testing.server import urls

UPSTREAMS: Any = urls("http://127.0.0.1:1")
CONFIG = structure_config(UPSTREAMS, base_dir=Path("."))


def allowed(method: str, target: str, *headers: tuple[str, str]) -> bool | None:
    """None when no provider routes it at all (a 404 before the gate)."""
    head = RequestHead(method, target, (("host", "x"), *headers))
    route = find_route(head, UPSTREAMS) or realtime_route(head, CONFIG)
    return None if route is None else friend_may_use(route, method, head.path)


WS = (("upgrade", "websocket"), ("connection", "upgrade"))
CLAUDE = ("anthropic-version", "2023-06-01")


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("POST", "/v1/responses", ()),
        ("GET", "/v1/responses", WS),
        ("POST", "/v1/responses/compact", ()),
        ("GET", "/v1/models?client_version=0.169.0", ()),
        ("POST", "/backend-api/codex/responses", ()),
        ("GET", "/backend-api/wham/usage", ()),
        ("POST", "/v1/messages?beta=true", (CLAUDE,)),
        ("POST", "/v1/messages/count_tokens", (CLAUDE,)),
        ("GET", "/v1/models", (CLAUDE,)),
        ("GET", "/v1/models/claude-opus-5-5", (CLAUDE,)),
        ("POST", "/v1internal:loadCodeAssist", ()),
        ("POST", "/v1internal:onboardUser", ()),
        ("POST", "/v1internal:retrieveUserQuota", ()),
        ("POST", "/v1internal:listExperiments", ()),
        ("POST", "/v1internal:generateContent", ()),
        ("POST", "/v1internal:streamGenerateContent?alt=sse", ()),
        ("POST", "/v1internal:countTokens", ()),
        ("GET", "/v1internal/operations/onboard-123", ()),
    ],
)
def test_what_the_clis_send_is_allowed(
    method: str, target: str, headers: tuple[tuple[str, str], ...]
) -> None:
    """real-clients.md's requests of Codex, Claude Code and Gemini CLI all pass."""
    assert allowed(method, target, *headers) is True


@pytest.mark.parametrize(
    ("method", "target", "headers"),
    [
        ("DELETE", "/backend-api/conversations/abc", ()),
        ("GET", "/backend-api/wham/accounts/check", ()),
        ("GET", "/backend-api/wham/settings/user", ()),
        ("POST", "/backend-api/ps/mcp", ()),
        ("GET", "/backend-api/ps/plugins/installed?limit=200", ()),
        ("POST", "/backend-api/codex/analytics-events/events", ()),
        ("GET", "/v1/realtime?model=x", WS),
        ("GET", "/v1/models/a/b", (CLAUDE,)),
        ("PUT", "/v1internal:setCodeAssistGlobalUserSetting", ()),
        ("POST", "/v1internal:setCodeAssistGlobalUserSetting", ()),
        ("GET", "/v1internal:streamGenerateContent", ()),
        ("DELETE", "/v1internal/operations/x", ()),
        ("GET", "/v1internal/operations/x/y", ()),
        ("POST", "/v1internal/operations/x", ()),
    ],
)
def test_the_rest_of_the_upstream_apis_is_not(
    method: str, target: str, headers: tuple[tuple[str, str], ...]
) -> None:
    """Anything else a route would forward with the owner's token is refused to pool keys."""
    assert allowed(method, target, *headers) is False
