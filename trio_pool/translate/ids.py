"""Deterministic identifiers: derived ids, shortened tool names and call ids, cache keys.

Nothing here is random: an id is a hash of what it stands for, so translating the same
conversation twice gives the same bytes (the upstream prompt cache keys on them).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable

import attrs

# Codex (Responses) function names and call ids: at most 64 characters (translation.md §2).
MAX_NAME = 64
MAX_CALL_ID = 64
_CLAUDE_ID = re.compile(r"[^A-Za-z0-9_-]")
_CLAUDE_NAME = re.compile(r"[^A-Za-z0-9_-]")


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "replace")).hexdigest()


def derived_id(prefix: str, *parts: str, length: int = 24) -> str:
    """``prefix`` + the first ``length`` hex digits of a hash of ``parts``."""
    return prefix + digest(*parts)[:length]


def short_call_id(call_id: str) -> str:
    """A call id that fits Codex's 64 characters: the head, ``_``, 16 hex of its hash (CPA)."""
    if len(call_id) <= MAX_CALL_ID:
        return call_id
    tail = digest(call_id)[:16]
    return f"{call_id[: MAX_CALL_ID - 17]}_{tail}"


def claude_tool_id(call_id: str) -> str:
    """A Codex call id as an Anthropic ``tool_use.id`` (``^[a-zA-Z0-9_-]+$``, CPA
    claude_tool_id.go); ids that need no change pass through so they round-trip."""
    if call_id and not _CLAUDE_ID.search(call_id):
        return call_id
    return "toolu_" + (_CLAUDE_ID.sub("_", call_id) if call_id else "") + "_" + digest(call_id)[:8]


@attrs.frozen
class ToolNames:
    """Long tool names shortened for an upstream's limit, and mapped back in its answers.

    Names within the limit are never changed. A long ``mcp__server__tool`` becomes
    ``mcp__tool``; any other long name is cut to the limit; collisions get ``_1``, ``_2``
    (CPA buildShortNameMap). Built once per request from the declared tools, so the
    request and the stream translator agree.
    """

    to_short: dict[str, str] = attrs.field(factory=dict)
    to_original: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def build(cls, names: Iterable[str], limit: int = MAX_NAME) -> ToolNames:
        names = list(dict.fromkeys(names))
        used = {name for name in names if len(name) <= limit}
        to_short: dict[str, str] = {}
        for name in names:
            if len(name) <= limit:
                continue
            base = name
            if name.startswith("mcp__") and "__" in name[5:]:
                base = "mcp__" + name.rsplit("__", 1)[1]
            base = base[:limit]
            candidate, n = base, 0
            while candidate in used:
                n += 1
                suffix = f"_{n}"
                candidate = base[: limit - len(suffix)] + suffix
            used.add(candidate)
            to_short[name] = candidate
        return cls(to_short, {short: name for name, short in to_short.items()})

    def short(self, name: str) -> str:
        return self.to_short.get(name, name)

    def original(self, name: str) -> str:
        return self.to_original.get(name, name)


def claude_tool_name(name: str) -> str:
    """A Responses tool name in Anthropic's alphabet (``^[a-zA-Z0-9_-]{1,64}$``)."""
    return _CLAUDE_NAME.sub("_", name) or "tool"


def claude_code_cache_key(model: str, session: str, agent: str = "main") -> str:
    """The Codex ``prompt_cache_key`` (and ``session-id``) for a Claude Code session.

    uuid5 is a hash, not a random draw: the same session and model always give the same
    key, so every turn of a conversation lands in the same upstream cache (CPA
    claude_code_session.go, with our own namespace string).
    """
    name = f"trio-pool:codex:claude-code\0{model}\0claude:{session}:agent:{agent}"
    return str(uuid.uuid5(uuid.NAMESPACE_OID, name))
