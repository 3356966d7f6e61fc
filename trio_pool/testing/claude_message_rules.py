"""What the Anthropic Messages API refuses in ``messages``, with its texts (400
``invalid_request_error``), as GitHub reports quote them:

* ``messages.N.content.M: Invalid `signature` in `thinking` block`` for a signature
  Anthropic did not issue: a GPT reasoning carried over, another proxy's encoding
  (caozhiyuan/copilot-api#78, antigravity-claude-proxy#298, NoeFabris/
  opencode-antigravity-auth#73). The simulator issues its own signatures (an HMAC of the
  thinking text, testing/scripts.py) and takes only those;
* ``messages.N.content.M.thinking.signature: Field required`` without a signature
  (justlovemaki/AIClient2API#437, lbjlaq/Antigravity-Manager#1650); an empty string is
  answered the same way, UNVERIFIED (claude-code#26542 reports "empty" signatures);
* ``messages.N.content.M: unexpected `tool_use_id` found in `tool_result` blocks: ID. Each
  `tool_result` block must have a corresponding `tool_use` block in the previous message.``
  (claude-code#13460, CPA#497);
* ``messages.N: `tool_use` ids were found without `tool_result` blocks immediately after:
  ID. Each `tool_use` block must have a corresponding `tool_result` block in the next
  message.`` (claude-code#5060, #3512) when a message follows the tool_use turn;
* ``messages.N.content.M: `tool_use` ids must be unique`` (claude-code#20901, #20700);
* ``messages.N.content.M.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'``
  (opencode#1279, command-code#323).

Pure: :func:`messages_refusal` returns the message of the 400, or None.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

TOOL_ID = re.compile(r"[a-zA-Z0-9_-]+")


def _blocks(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, dict) else None
    return content if isinstance(content, list) else []


def _ids(message: Any, kind: str, key: str) -> list[str]:
    return [
        str(block.get(key))
        for block in _blocks(message)
        if isinstance(block, dict) and block.get("type") == kind
    ]


def messages_refusal(
    request: Mapping[str, Any], *, signature_valid: Callable[[str, str], bool]
) -> str | None:
    """The refusal of this body's ``messages``, or None.

    ``signature_valid(thinking, signature)`` says whether the simulator signed it.
    """
    messages = request.get("messages")
    if not isinstance(messages, list):
        return None
    seen: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        previous = messages[i - 1] if i else None
        offered = set(_ids(previous, "tool_use", "id")) if _role(previous) == "assistant" else set()
        for j, block in enumerate(_blocks(message)):
            if not isinstance(block, dict):
                continue
            refusal = _block_refusal(i, j, block, role, seen, offered, signature_valid)
            if refusal is not None:
                return refusal
        if role == "assistant" and i + 1 < len(messages):
            used = _ids(message, "tool_use", "id")
            answered = set(_ids(messages[i + 1], "tool_result", "tool_use_id"))
            missing = [u for u in used if u not in answered]
            if missing:
                return (
                    f"messages.{i}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing)}. Each `tool_use` block must have "
                    "a corresponding `tool_result` block in the next message."
                )
    return None


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _block_refusal(
    i: int,
    j: int,
    block: dict[str, Any],
    role: Any,
    seen: set[str],
    offered: set[str],
    signature_valid: Callable[[str, str], bool],
) -> str | None:
    kind = block.get("type")
    at = f"messages.{i}.content.{j}"
    if kind == "thinking" and role == "assistant":
        signature = block.get("signature")
        if not isinstance(signature, str) or not signature:
            return f"{at}.thinking.signature: Field required"
        if not signature_valid(str(block.get("thinking") or ""), signature):
            return f"{at}: Invalid `signature` in `thinking` block"
    elif kind == "tool_use":
        tool_id = str(block.get("id") or "")
        if not TOOL_ID.fullmatch(tool_id):
            return f"{at}.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
        if tool_id in seen:
            return f"{at}: `tool_use` ids must be unique"
        seen.add(tool_id)
    elif kind == "tool_result":
        tool_id = str(block.get("tool_use_id") or "")
        if tool_id not in offered:
            return (
                f"{at}: unexpected `tool_use_id` found in `tool_result` blocks: {tool_id}. "
                "Each `tool_result` block must have a corresponding `tool_use` block in the "
                "previous message."
            )
    return None
