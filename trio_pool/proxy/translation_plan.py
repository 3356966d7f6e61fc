"""A translated request as the shell sends it: the upstream body and headers, and how the
upstream's answer becomes the client's (translation.md §2, §4, §5).

Built once per client request from the pure translators (``trio_pool.translate``); each
try of the attempt loop reuses it. Everything here is a value or a factory: the stream
machines are stateful, so each try gets fresh ones.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import attrs

from trio_pool import clock
from trio_pool.config import TranslateConfig
from trio_pool.providers.base import ConversationKey, ProviderName
from trio_pool.providers.identity import codex_headers
from trio_pool.providers.wire import compact_json
from trio_pool.server.messages import RequestHead
from trio_pool.translate import aggregate, chat_request, chat_stream, errors
from trio_pool.translate.fields import as_dict
from trio_pool.translate.messages_stream_to_responses import MessagesToResponses
from trio_pool.translate.messages_to_responses import messages_to_responses
from trio_pool.translate.responses_stream_to_messages import ResponsesToMessages
from trio_pool.translate.responses_to_messages import responses_to_messages
from trio_pool.translate.routing import Target
from trio_pool.translate.sse import Event, OutEvent

ErrorReply = Callable[[int, Any, Mapping[str, str], float], errors.JsonReply]


class StreamMachine(Protocol):
    """A stream translator (``trio_pool.translate``'s ``feed`` / ``finish`` machines)."""

    def feed(self, event: Event) -> list[OutEvent]: ...

    def finish(self) -> list[OutEvent]: ...

    @property
    def ended(self) -> bool:
        """A terminal event (completed, failed, error) has been written."""
        ...


class Assembler(Protocol):
    """Collects a translated stream into one JSON answer for a ``stream: false`` client."""

    def add(self, events: Iterable[OutEvent]) -> None: ...

    def reply(self) -> errors.JsonReply: ...


@attrs.frozen
class Translation:
    """One translated request, for every try of it."""

    target: Target
    upstream_path: str  # appended to the upstream provider's base URL
    head: RequestHead = attrs.field(repr=False)  # what the upstream provider prepares from
    body: bytes = attrs.field(repr=False)
    key: ConversationKey | None
    client_stream: bool
    new_machine: Callable[[], StreamMachine]
    new_assembler: Callable[[], Assembler]
    error_reply: ErrorReply
    # Messages -> Codex with replayed reasoning: the body for any other account than the
    # one that issued it (Codex refuses another organisation's encrypted_content).
    body_without_reasoning: bytes | None = attrs.field(default=None, repr=False)

    @property
    def upstream(self) -> ProviderName:
        return self.target.provider

    @property
    def ping(self) -> bool:
        """Messages streams get ``event: ping`` when the upstream is silent (§3.1)."""
        return self.target.client_format == "messages" and self.client_stream


def _head(headers: Iterable[tuple[str, str]], path: str) -> RequestHead:
    return RequestHead("POST", path, tuple(headers))


def plan_translation(
    target: Target, body: Any, head: RequestHead, config: TranslateConfig
) -> Translation:
    """The translation of ``body`` (the client's parsed JSON) for ``target``.

    Raises ``errors.TranslationError`` (a 400 for the client) when the body is not the
    shape its format requires.
    """
    match (target.client_format, target.provider):
        case ("messages", "codex"):
            return _messages_on_codex(target, body, head, config)
        case ("chat", "codex"):
            return _chat_on_codex(target, body)
        case ("responses", "claude"):
            return _responses_on_claude(target, body, head)
        case ("chat", "claude"):
            return _chat_on_claude(target, body)
    raise errors.TranslationError(f"no translation from {target.client_format} to {target}")


# Codex accounts take translated traffic with the identity trio-pool already uses for its own
# Codex calls (token refresh, usage polls): Codex CLI's default client's, never Claude Code's.
_CODEX_IDENTITY = codex_headers()


def _messages_on_codex(
    target: Target, body: Any, head: RequestHead, config: TranslateConfig
) -> Translation:
    client_headers = {k: v for k, v in head.headers if k.startswith("x-claude-code-")}
    request = messages_to_responses(
        body,
        model=target.model,
        default_effort=target.effort,
        headers=client_headers,
        reasoning_replay=config.reasoning_replay,
        system_messages=config.system_messages,
    )
    items = request.body["input"]
    replays = any(item.get("type") == "reasoning" for item in items)
    without = None
    if replays:
        lean = dict(request.body, input=[i for i in items if i.get("type") != "reasoning"])
        without = compact_json(lean)
    cache_key = request.body.get("prompt_cache_key")
    # While reasoning is replayed the conversation must stay where it was issued: a hard pin.
    key = ConversationKey(cache_key, hard=replays) if cache_key else None
    names, replay = request.tool_names, config.reasoning_replay
    return Translation(
        target,
        "/responses",
        _head((*request.headers, *_CODEX_IDENTITY), "/v1/responses"),
        compact_json(request.body),
        key,
        request.client_stream,
        lambda: ResponsesToMessages(request.client_model, names, replay),
        aggregate.MessageAssembler,
        errors.codex_to_messages_error,
        without,
    )


def _chat_on_codex(target: Target, body: Any) -> Translation:
    request = chat_request.chat_to_codex(body, model=target.model, default_effort=target.effort)
    cache_key = request.body.get("prompt_cache_key")
    key = ConversationKey(cache_key) if cache_key else None
    include_usage = _include_usage(body, request.client_stream)
    created = int(clock.now())
    names = request.tool_names
    return Translation(
        target,
        "/responses",
        _head((*request.headers, *_CODEX_IDENTITY), "/v1/responses"),
        compact_json(request.body),
        key,
        request.client_stream,
        lambda: chat_stream.ResponsesToChat(request.client_model, created, include_usage, names),
        aggregate.ChatAssembler,
        errors.codex_to_chat_error,
    )


def _include_usage(body: Any, client_stream: bool) -> bool:
    """A usage chunk: asked for by a streaming client, always for one JSON answer."""
    asked = as_dict(as_dict(body).get("stream_options")).get("include_usage") is True
    return asked or not client_stream


def _responses_on_claude(target: Target, body: Any, head: RequestHead) -> Translation:
    request = responses_to_messages(body, model=target.model, default_effort=target.effort)
    # Codex's conversation id (session-id header, else the body's prompt_cache_key).
    session = (head.get("session-id") or "").strip() or as_dict(body).get("prompt_cache_key")
    key = ConversationKey(session) if isinstance(session, str) and session else None
    tools = request.tools
    # The Responses API streams only when asked (Codex CLI always asks).
    client_stream = as_dict(body).get("stream") is True
    return Translation(
        target,
        "/v1/messages",
        _head(request.headers, "/v1/messages"),
        compact_json(request.body),
        key,
        client_stream,
        lambda: MessagesToResponses(request.client_model, tools),
        aggregate.ResponseAssembler,
        errors.claude_to_responses_error,
    )


def _chat_on_claude(target: Target, body: Any) -> Translation:
    request = chat_request.chat_to_claude(body, model=target.model, default_effort=target.effort)
    include_usage = _include_usage(body, request.client_stream)
    created = int(clock.now())
    tools = request.tools
    return Translation(
        target,
        "/v1/messages",
        _head(request.headers, "/v1/messages"),
        compact_json(request.body),
        None,
        request.client_stream,
        lambda: chat_stream.MessagesToChat(request.client_model, created, include_usage, tools),
        aggregate.ChatAssembler,
        errors.claude_to_chat_error,
    )
