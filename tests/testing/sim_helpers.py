"""Helpers for the simulator tests: a manual clock, SSE parsing and short request calls."""

from __future__ import annotations

import json
from typing import Any

import attrs

from tests.http_client import HttpClient, Reply
from trio_pool.testing.accounts import SimAccount
from trio_pool.testing.state import SimState


@attrs.define
class ManualClock:
    """Unix seconds that move only when a test says so."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@attrs.frozen
class Sim:
    state: SimState
    base: str
    clock: ManualClock

    def account(self, provider: str) -> SimAccount:
        return self.state.account(f"{provider}/a")


def codex_headers(account: SimAccount) -> list[tuple[str, str]]:
    return [
        ("authorization", f"Bearer {account.access_token}"),
        ("chatgpt-account-id", account.account_id),
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
    ]


def claude_headers(account: SimAccount, beta: str = "oauth-2025-04-20") -> list[tuple[str, str]]:
    return [
        ("authorization", f"Bearer {account.access_token}"),
        ("anthropic-beta", f"claude-code-20250219,{beta}"),
        ("anthropic-version", "2023-06-01"),
        ("content-type", "application/json"),
    ]


def gemini_headers(account: SimAccount) -> list[tuple[str, str]]:
    return [
        ("authorization", f"Bearer {account.access_token}"),
        ("content-type", "application/json"),
    ]


async def call(
    http: HttpClient,
    method: str,
    url: str,
    headers: list[tuple[str, str]],
    body: Any = None,
    *,
    raw: bytes | None = None,
) -> Reply:
    content = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
    return await http.request(method, url, headers=headers, content=content)


def header(response: Reply, name: str) -> str | None:
    for key, value in response.headers:
        if key.decode().lower() == name:
            return value.decode()
    return None


def json_body(response: Reply) -> Any:
    return json.loads(response.content)


def sse_events(body: bytes) -> list[tuple[str | None, dict[str, Any]]]:
    """(event name, parsed data) for each SSE event; every data line must be valid JSON."""
    events = []
    text = body.decode().replace("\r\n", "\n")
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        name = None
        data = []
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data.append(line[len("data: ") :])
        events.append((name, json.loads("\n".join(data))))
    return events
