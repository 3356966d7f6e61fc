"""Thinking signatures that carry Codex reasoning through Claude Code (translation.md §3.3).

Under ``store: false`` Codex keeps no state: the only way to replay a reasoning item is to
send back its ``encrypted_content``. Claude Code stores thinking blocks as
``{type, thinking, signature}`` and echoes them, so the signature carries both the item id
and the encrypted content: ``tp1:codex:<base64url(id)>:<encrypted_content>`` [prop].

Anthropic rejects any signature it did not issue ("Invalid `signature` in `thinking`
block"), so before a conversation goes back to a Claude account every thinking block we
(or another translator) signed is removed, and assistant turns left empty are dropped.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any

from trio_pool.translate.fields import as_dict, as_list, as_str

PREFIX = "tp1:codex:"
# OpenAI's encrypted reasoning is a Fernet token: it starts with "gAAAA" (CPA gpt_validation).
OPENAI_ENCRYPTED = "gAAAA"
# Claude's redacted thinking travels through Codex's encrypted_content with this prefix (CPA).
REDACTED_PREFIX = "claude-redacted-thinking:"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


def encode_signature(item_id: str, encrypted_content: str) -> str:
    packed = base64.urlsafe_b64encode(item_id.encode()).rstrip(b"=").decode()
    return f"{PREFIX}{packed}:{encrypted_content}"


def decode_signature(signature: str) -> tuple[str, str] | None:
    """``(item_id, encrypted_content)`` from one of our signatures, else None."""
    if not signature.startswith(PREFIX):
        return None
    packed, sep, encrypted = signature[len(PREFIX) :].partition(":")
    if not sep or not encrypted or not _BASE64URL.fullmatch(packed):
        return None
    try:
        item_id = base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)).decode()
    except (binascii.Error, ValueError):
        return None
    return item_id, encrypted


def is_anthropic_signature(signature: Any) -> bool:
    """Whether a signature may have come from Anthropic: not empty, not ours, not OpenAI's.

    We cannot verify Anthropic's signatures; we only recognise the ones that certainly are
    not (empty ones fail with "thinking.signature: Field required", claude-code#26542).
    """
    if not isinstance(signature, str) or not signature.strip():
        return False
    return not signature.startswith((PREFIX, OPENAI_ENCRYPTED, "ccp:", "lllm-"))


def _foreign(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    if block.get("type") == "thinking":
        return not is_anthropic_signature(block.get("signature"))
    return False


def strip_foreign_thinking(body: Any) -> dict[str, Any] | None:
    """A native Messages request without thinking blocks Anthropic did not sign.

    Returns None when nothing had to change, so the shell forwards the client's original
    bytes (re-encoding would cost the prompt cache nothing, but it is needless work).
    Assistant turns left empty are dropped and the neighbours they separated merged,
    because Anthropic rejects empty content (sandboxed.sh#472: thinking-only turns fail).
    """
    messages = as_list(as_dict(body).get("messages"))
    if not any(
        isinstance(m, dict)
        and isinstance(m.get("content"), list)
        and any(map(_foreign, m["content"]))
        for m in messages
    ):
        return None
    result = copy.deepcopy(as_dict(body))
    kept: list[Any] = []
    for message in result["messages"]:
        if isinstance(message, dict) and isinstance(message.get("content"), list):
            content = [block for block in message["content"] if not _foreign(block)]
            if not content and message.get("role") == "assistant":
                continue
            message["content"] = content
        previous = kept[-1] if kept else None
        if (
            isinstance(previous, dict)
            and isinstance(message, dict)
            and previous.get("role") == message.get("role")
        ):
            previous["content"] = _as_blocks(previous.get("content")) + _as_blocks(
                message.get("content")
            )
            continue
        kept.append(message)
    result["messages"] = kept
    return result


def _as_blocks(content: Any) -> list[Any]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return as_list(content)


def summary_text(item: Any) -> str:
    """The summary of a Responses reasoning item, parts joined by blank lines."""
    parts = [as_str(as_dict(p).get("text")) for p in as_list(as_dict(item).get("summary"))]
    return "\n\n".join(p for p in parts if p)
