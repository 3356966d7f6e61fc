"""Try it (POST /api/try): one small real request through the pool, as a CLI would send it.

The request goes over loopback HTTP to the proxy itself, so it takes the same path as any
client's (routing, failover, limits, ledger) and is counted for the caller: the internal
token lets it past the key check as that user. The proxy names the account that answered
in ``x-trio-pool-account`` (internal requests only).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import attrs
import trio

from trio_pool.auth.internal import ACCOUNT_HEADER, INTERNAL_HEADER, USER_HEADER
from trio_pool.errors import TryInputError, UpstreamError
from trio_pool.providers.base import PROVIDERS, ProviderName
from trio_pool.providers.sse import SseParser
from trio_pool.upstream.client import UpstreamClient

log = logging.getLogger(__name__)

MAX_PROMPT_CHARS = 2000
MAX_MODEL_CHARS = 100
TIMEOUT_S = 30.0
MAX_TEXT_CHARS = 8000
MAX_ANSWER_BYTES = 1024 * 1024
# The model asked for unless the caller names one. Codex and Gemini: what each CLI uses by
# default (real-clients.md). Claude: a Haiku model. Claude Code signs its requests with a
# billing block (x-anthropic-billing-header, cch=) that we cannot reproduce; without it a
# subscription token is refused for other models (400 "Third-party apps now draw from your
# extra usage") or billed as extra usage, while Haiku is let through (real-services.md §2).
DEFAULT_MODELS: dict[ProviderName, str] = {
    "claude": "claude-haiku-4-5",
    "codex": "gpt-6.1-sol",
    "gemini": "gemini-3-flash",
}
# Subscription OAuth tokens expect Claude Code's identity as the first system block.
CLAUDE_SYSTEM = "You are Claude Code, Anthropic's official CLI for Claude."
# The ChatGPT backend refuses a body without instructions ("Instructions are required");
# an empty string is what works for other clients (CPA).
CODEX_INSTRUCTIONS = ""


@attrs.frozen
class TryRequest:
    provider: ProviderName
    prompt: str
    model: str


@attrs.frozen
class Outgoing:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


def parse_try(document: dict[str, Any]) -> TryRequest:
    """The request from the /api/try body; TryInputError when it is not usable."""
    provider = document.get("provider")
    prompt = document.get("prompt")
    model = document.get("model")
    if provider not in PROVIDERS:
        raise TryInputError(f"provider: expected one of {', '.join(PROVIDERS)}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise TryInputError("prompt: expected a non-empty string")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise TryInputError(f"prompt: at most {MAX_PROMPT_CHARS} characters")
    if model is not None and (
        not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL_CHARS
    ):
        raise TryInputError(f"model: expected a string of at most {MAX_MODEL_CHARS} characters")
    return TryRequest(provider, prompt, model or DEFAULT_MODELS[provider])


def outgoing(request: TryRequest) -> Outgoing:
    """The provider's normal request shape for one short, single-turn prompt."""
    json_type = ("content-type", "application/json")
    headers: tuple[tuple[str, str], ...]
    if request.provider == "claude":
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": 512,
            "system": [{"type": "text", "text": CLAUDE_SYSTEM}],
            "messages": [{"role": "user", "content": request.prompt}],
        }
        headers = (json_type, ("anthropic-version", "2023-06-01"), ("x-app", "cli"))
        return Outgoing("POST", "/v1/messages", headers, _dumps(body))
    if request.provider == "codex":
        # What the ChatGPT backend takes: instructions present, store false, streamed.
        body = {
            "model": request.model,
            "instructions": CODEX_INSTRUCTIONS,
            "input": [
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": request.prompt}],
                }
            ],
            "stream": True,
            "store": False,
        }
        headers = (json_type, ("accept", "text/event-stream"))
        return Outgoing("POST", "/v1/responses", headers, _dumps(body))
    # Gemini (Code Assist): the proxy puts the account's project into "project".
    body = {
        "model": request.model,
        "project": "",
        "request": {"contents": [{"role": "user", "parts": [{"text": request.prompt}]}]},
    }
    return Outgoing("POST", "/v1internal:generateContent", (json_type,), _dumps(body))


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def read_answer(provider: ProviderName, status: int, body: bytes) -> tuple[str, str | None]:
    """(text, model) from the proxy's answer; for an error, its message as the text."""
    if status >= 400 or (provider != "codex" and not body.lstrip().startswith(b"{")):
        return _error_text(body), None
    if provider == "codex":
        return _codex_answer(body)
    payload = _json(body)
    if not isinstance(payload, dict):
        return body.decode("utf-8", "replace")[:MAX_TEXT_CHARS], None
    if provider == "claude":
        blocks = payload.get("content")
        parts = [
            str(b.get("text", ""))
            for b in (blocks if isinstance(blocks, list) else [])
            if isinstance(b, dict) and b.get("type") == "text"
        ]
        return "".join(parts)[:MAX_TEXT_CHARS], _str(payload.get("model"))
    response = payload.get("response")
    response = response if isinstance(response, dict) else payload
    candidates = response.get("candidates")
    first = candidates[0] if isinstance(candidates, list) and candidates else {}
    content = first.get("content") if isinstance(first, dict) else None
    raw_parts = content.get("parts") if isinstance(content, dict) else None
    texts = [
        str(p.get("text", ""))
        for p in (raw_parts if isinstance(raw_parts, list) else [])
        if isinstance(p, dict) and not p.get("thought")
    ]
    return "".join(texts)[:MAX_TEXT_CHARS], _str(response.get("modelVersion"))


def _codex_answer(body: bytes) -> tuple[str, str | None]:
    texts: list[str] = []
    model: str | None = None
    failure: str | None = None
    for event in SseParser().feed(body + b"\n\n"):
        payload = _json(event.data.encode())
        if not isinstance(payload, dict):
            continue
        kind = payload.get("type", event.event)
        if kind == "response.output_text.delta":
            texts.append(str(payload.get("delta", "")))
        response = payload.get("response")
        if isinstance(response, dict):
            model = _str(response.get("model")) or model
            error = response.get("error")
            if kind == "response.failed" and isinstance(error, dict):
                failure = str(error.get("message", "the response failed"))
        if kind == "error":
            failure = str(payload.get("message", "") or _error_text(event.data.encode()))
    text = "".join(texts)
    if not text and failure:
        text = failure
    return text[:MAX_TEXT_CHARS], model


def _error_text(body: bytes) -> str:
    payload = _json(body)
    error = payload.get("error") if isinstance(payload, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])[:MAX_TEXT_CHARS]
    if isinstance(error, str):
        return error[:MAX_TEXT_CHARS]
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, str):  # the ChatGPT backend's FastAPI-style refusals
        return detail[:MAX_TEXT_CHARS]
    return body.decode("utf-8", "replace")[:MAX_TEXT_CHARS]


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


async def try_request(
    client: UpstreamClient,
    self_url: str,
    internal_token: str,
    user: str | None,
    request: TryRequest,
) -> dict[str, Any]:
    """Send ``request`` through the proxy at ``self_url``; the /api/try answer document.

    Bounded by TIMEOUT_S; a timeout is status 504 and a failed connection 502, both with
    the reason as the text.
    """
    out = outgoing(request)
    headers = [
        *out.headers,
        (INTERNAL_HEADER, internal_token),
        (USER_HEADER, user or ""),
        ("accept-encoding", "identity"),
    ]
    started = trio.current_time()
    account: str | None = None
    status, body = 0, b""
    with trio.move_on_after(TIMEOUT_S) as scope:
        try:
            async with client.stream(
                out.method, self_url.rstrip("/") + out.path, headers, out.body
            ) as response:
                status = response.status
                account = dict(response.headers).get(ACCOUNT_HEADER) or None
                body = await response.read_all(MAX_ANSWER_BYTES)
        except UpstreamError as exc:
            status, body = 502, _dumps({"error": {"message": str(exc)}})
    if scope.cancelled_caught:
        status = 504
        body = _dumps({"error": {"message": f"no answer within {TIMEOUT_S:g} s"}})
    text, model = read_answer(request.provider, status, body)
    ms = round((trio.current_time() - started) * 1000, 1)
    log.info(
        "dashboard.try provider=%s status=%d account=%s ms=%.1f",
        request.provider,
        status,
        account,
        ms,
    )
    return {
        "provider": request.provider,
        "account": account,
        "status": status,
        "text": text,
        "model": model or request.model,
        "ms": ms,
    }
