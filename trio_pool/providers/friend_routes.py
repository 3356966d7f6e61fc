"""What a pool key may reach upstream in shared mode: the paths and methods each CLI uses.

A friend's request goes out with the owner's token, so a pool key must not reach the
rest of an upstream API (``DELETE /backend-api/conversations/...``, the owner's profile,
settings or connected apps). The tables follow real-clients.md (Codex CLI 0.169, Claude Code
2.1.330, Gemini CLI 0.61). Left out on purpose, all of them tolerated as 404 by the CLIs:

* Codex's ``/backend-api`` side calls (``wham/accounts/check``, ``wham/settings/user``,
  ``ps/plugins/*``, ``ps/mcp``, ``codex/analytics-events``): they read or act on the
  owner's ChatGPT account and its connected apps, and Codex only needs ``/v1/responses``;
* the ``/v1/realtime`` pass-through, which no CLI uses;
* Code Assist ``setCodeAssistGlobalUserSetting``, which changes the owner's settings.

Pure: a function of the route, the method and the path.
"""

from __future__ import annotations

import re

from trio_pool.providers.base import ProviderName, Route, RouteKind

_CODEX_MODEL_PREFIXES = ("/v1", "/backend-api/codex")
_CODEX: frozenset[tuple[str, str]] = frozenset(
    {
        *((m, p + rest) for p in _CODEX_MODEL_PREFIXES for m, rest in (
            ("POST", "/responses"),
            ("GET", "/responses"),  # the WebSocket upgrade
            ("POST", "/responses/compact"),
            ("GET", "/models"),
        )),
        ("POST", "/v1/chat/completions"),  # Chat Completions clients (translation.md §5)
        ("GET", "/backend-api/wham/usage"),  # answered by trio-pool from the pool's numbers
        ("GET", "/api/codex/usage"),
    }
)  # fmt: skip
_CLAUDE: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/v1/messages"),
        ("POST", "/v1/messages/count_tokens"),
        ("GET", "/v1/models"),
    }
)
_CLAUDE_MODEL = re.compile(r"/v1/models/[A-Za-z0-9._@:-]{1,200}")
_GEMINI_METHODS = frozenset(
    {
        "loadCodeAssist",
        "onboardUser",
        "retrieveUserQuota",
        "listExperiments",
        "generateContent",
        "streamGenerateContent",
        "countTokens",
        "fetchAdminControls",
        "recordCodeAssistMetrics",
        "getCodeAssistGlobalUserSetting",
    }
)
_GEMINI_OPERATION = re.compile(r"/v1internal/operations/[A-Za-z0-9._-]{1,200}")


def friend_may_use(route: Route, method: str, path: str) -> bool:
    """May a pool key's request take this route? (The local owner and admins may go anywhere.)"""
    provider: ProviderName = route.provider
    if provider == "codex":
        if route.kind is RouteKind.WEBSOCKET and not path.endswith("/responses"):
            return False  # /v1/realtime
        return (method, path) in _CODEX
    if provider == "claude":
        return (method, path) in _CLAUDE or (
            method == "GET" and _CLAUDE_MODEL.fullmatch(path) is not None
        )
    rpc, colon, name = path.partition(":")
    if colon:
        return method == "POST" and rpc == "/v1internal" and name in _GEMINI_METHODS
    return method == "GET" and _GEMINI_OPERATION.fullmatch(path) is not None
