"""Answers a translated route gives without asking an upstream.

- ``POST /v1/messages/count_tokens`` for a Codex-served model: Codex has no such call, and
  sending one upstream 404s and has cooled a model for 12 h (CPA#4410). Claude Code's
  ``/context`` uses it, so the estimate must count everything the prompt holds: system,
  tools and messages (CPA#679 reported 48 instead of 728 when tools were left out). The
  estimate is S2's: a quarter token per character [prop: tiktoken would be closer, but it
  is a dependency and a download].
- Claude Code's interactive quota probe (``max_tokens: 1``, text ``quota``) would become a
  full Codex turn (Codex has no token cap), so it is answered locally [prop].
- ``GET /v1/models`` in the client's own list format.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from trio_pool.translate.fields import as_dict, as_int, as_list, as_str, dumps
from trio_pool.translate.ids import derived_id
from trio_pool.translate.messages_to_responses import system_texts

CHARS_PER_TOKEN = 4
# Images and files are sent as references or base64 whose length says nothing about
# their tokens: each counts as a typical large image (Anthropic: about w*h/750) [prop].
ATTACHMENT_TOKENS = 1600
# What `GET /v1/models` lists for each provider the pool has accounts of [prop]: the
# current models of each CLI's own catalogue (Codex CLI 0.169.0's default first, Claude
# Code 2.1.330's default first); any other name still works when a client asks for it.
CODEX_MODELS = ("gpt-6.1-sol", "gpt-5.5", "gpt-5.4-mini", "gpt-5.3-codex")
CLAUDE_MODELS = ("claude-opus-5-5", "claude-sonnet-4-5", "claude-haiku-4-5")
# A fixed date for model listings: the SDKs parse it, and the listing must be stable.
LISTED_AT = "2025-01-01T00:00:00Z"


def estimate_input_tokens(body: Any) -> int:
    """An estimate of a Messages request's input tokens (at least 1)."""
    body = as_dict(body)
    chars = sum(len(t) for t in system_texts(body.get("system")))
    tools = as_list(body.get("tools"))
    if tools:
        chars += len(dumps(tools))
    attachments = 0
    for message in as_list(body.get("messages")):
        content = as_dict(message).get("content")
        if isinstance(content, str):
            chars += len(content)
            continue
        for block in as_list(content):
            added, images = _block_size(as_dict(block))
            chars += added
            attachments += images
    return max(1, math.ceil(chars / CHARS_PER_TOKEN) + attachments * ATTACHMENT_TOKENS)


def _block_size(block: dict[str, Any]) -> tuple[int, int]:
    kind = block.get("type")
    if kind == "text":
        return len(as_str(block.get("text"))), 0
    if kind == "thinking":
        return len(as_str(block.get("thinking"))), 0
    if kind == "tool_use":
        return len(as_str(block.get("name"))) + len(dumps(block.get("input", {}))), 0
    if kind == "tool_result":
        content = block.get("content")
        if isinstance(content, str):
            return len(content), 0
        chars = images = 0
        for part in as_list(content):
            added, more = _block_size(as_dict(part))
            chars, images = chars + added, images + more
        return chars, images
    if kind in ("image", "document"):
        source = as_dict(block.get("source"))
        if source.get("type") == "text":
            return len(as_str(source.get("data"))), 0
        return 0, 1
    return 0, 0


def count_tokens_reply(body: Any) -> dict[str, Any]:
    return {"input_tokens": estimate_input_tokens(body)}


def is_quota_probe(body: Any) -> bool:
    """Claude Code's start-up probe: ``max_tokens: 1`` and one user message ``quota``."""
    body = as_dict(body)
    messages = as_list(body.get("messages"))
    if as_int(body.get("max_tokens")) != 1 or len(messages) != 1:
        return False
    content = as_dict(messages[0]).get("content")
    if isinstance(content, list):
        content = "".join(as_str(as_dict(b).get("text")) for b in content)
    return as_dict(messages[0]).get("role") == "user" and content == "quota"


def quota_probe_reply(body: Any) -> dict[str, Any]:
    """A one-token Messages answer to the quota probe."""
    model = as_str(as_dict(body).get("model"))
    return {
        "id": derived_id("msg_", "quota-probe", model),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": ""}],
        "stop_reason": "max_tokens",
        "stop_sequence": None,
        "usage": {"input_tokens": estimate_input_tokens(body), "output_tokens": 1},
    }


def openai_model_list(model_ids: Iterable[str]) -> dict[str, Any]:
    """``GET /v1/models`` as the OpenAI API lists models (Chat Completions clients)."""
    data = []
    for model in dict.fromkeys(model_ids):
        owner = "anthropic" if model.startswith("claude") else "openai"
        data.append({"id": model, "object": "model", "created": 0, "owned_by": owner})
    return {"object": "list", "data": data}


def anthropic_model_list(model_ids: Iterable[str]) -> dict[str, Any]:
    """``GET /v1/models`` as Anthropic's API lists models (Claude Code, the SDK)."""
    ids = list(dict.fromkeys(model_ids))
    data = [{"type": "model", "id": m, "display_name": m, "created_at": LISTED_AT} for m in ids]
    return {
        "data": data,
        "has_more": False,
        "first_id": ids[0] if ids else None,
        "last_id": ids[-1] if ids else None,
    }
