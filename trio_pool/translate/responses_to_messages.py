"""Codex CLI on Claude accounts: a Responses request as a Messages request (§4.1).

Off by default (``codex_on_claude``): Anthropic may ban subscriptions used outside Claude
Code (§0.2). The request is sent as what it is: no billing header, no "You are Claude
Code" prefix, no Claude Code user agent; only ``anthropic-version`` and the betas the
features used need (the shell adds the OAuth beta as for any Claude request).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from trio_pool.translate.errors import TranslationError
from trio_pool.translate.fields import as_dict, as_int, as_list, as_str, loads_object
from trio_pool.translate.ids import claude_tool_id, digest
from trio_pool.translate.responses_tools import ToolTable, build_tool_table, claude_tool_choice
from trio_pool.translate.signatures import REDACTED_PREFIX, is_anthropic_signature, summary_text

DEFAULT_MAX_TOKENS = 32000  # CPA's default when Codex sends no max_output_tokens
# Budgets for models without adaptive thinking (CPA levelToBudgetMap).
BUDGETS = {"minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768}
# [?] Claude models from 4.6 on take adaptive thinking + output_config.effort; older ones
# a token budget. No source lists them: a model name newer than 4.5 counts as adaptive.
_VERSION = re.compile(r"^claude-(?:[a-z]+-)?(\d+)(?:[-.](\d{1,2}))?(?:\D|$)")
BLOCK_ORDER = {"thinking": 0, "redacted_thinking": 0, "text": 1, "image": 1, "document": 1}


@attrs.frozen
class ClaudeRequest:
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...]
    client_model: str
    client_stream: bool
    tools: ToolTable


def adaptive_thinking(model: str) -> bool:
    match = _VERSION.match(model.lower())
    if match is None:
        return True
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return (major, minor) >= (4, 6)


def responses_to_messages(
    body: Any, *, model: str, default_effort: str | None = None
) -> ClaudeRequest:
    if not isinstance(body, dict) or not isinstance(body.get("input"), list | str):
        raise TranslationError("the request body must be a JSON object with an input")
    table = build_tool_table(body)
    system, entries, outputs = _read_input(body, table)
    messages = _assemble(entries, outputs)
    max_tokens = as_int(body.get("max_output_tokens")) or DEFAULT_MAX_TOKENS
    out: dict[str, Any] = {"model": model, "max_tokens": max_tokens}
    if system:
        out["system"] = [{"type": "text", "text": text} for text in system]
    out["messages"] = messages
    if table.tools and body.get("tool_choice") != "none":
        out["tools"] = table.tools
        choice = claude_tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), table)
        if choice is not None:
            out["tool_choice"] = choice
    effort = as_str(as_dict(body.get("reasoning")).get("effort")) or default_effort or ""
    betas = _thinking(out, model, effort, max_tokens)
    cache_key = as_str(body.get("prompt_cache_key"))
    if cache_key:
        # A stable, opaque id per Codex thread (CPA DeriveClaudeUserID); not Claude Code's.
        out["metadata"] = {"user_id": digest(cache_key)}
    out["stream"] = True
    headers = [
        ("content-type", "application/json"),
        ("accept", "text/event-stream"),
        ("anthropic-version", "2023-06-01"),
    ]
    if betas:
        headers.append(("anthropic-beta", ",".join(betas)))
    client_model = as_str(body.get("model"))
    return ClaudeRequest(out, tuple(headers), client_model, body.get("stream") is not False, table)


def _thinking(out: dict[str, Any], model: str, effort: str, max_tokens: int) -> list[str]:
    if effort in ("", "none"):
        return []
    if adaptive_thinking(model):
        level = {"minimal": "low", "xhigh": "max"}.get(effort, effort)
        out["thinking"] = {"type": "adaptive"}
        out["output_config"] = {"effort": level}
        return ["effort-2025-11-24"]  # [?] the beta Claude Code sends with an effort
    budget = min(BUDGETS.get(effort, 8192), max_tokens - 1)
    if budget >= 1024:  # Anthropic's minimum budget; below it, no thinking
        out["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return ["interleaved-thinking-2025-05-14"]
    return []


Entry = tuple[str, dict[str, Any]]


def _read_input(
    body: dict[str, Any], table: ToolTable
) -> tuple[list[str], list[Entry], dict[str, Any]]:
    """System texts, (role, block) entries in order, and the last output per call id."""
    system = [body["instructions"]] if as_str(body.get("instructions")) else []
    items = body["input"]
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    entries: list[Entry] = []
    outputs: dict[str, Any] = {}
    for item in items:
        item = as_dict(item)
        kind = as_str(item.get("type")) or ("message" if "role" in item else "")
        if kind == "message":
            role = as_str(item.get("role"))
            if role in ("developer", "system"):
                text = _plain_text(item.get("content"))
                if text:
                    system.append(text)
            elif role in ("user", "assistant"):
                entries.extend((role, b) for b in _blocks(item.get("content")))
        elif kind in ("function_call", "custom_tool_call"):
            name = table.claude_name(as_str(item.get("namespace")), as_str(item.get("name")))
            if kind == "custom_tool_call":
                tool_input: dict[str, Any] = {"input": as_str(item.get("input"))}
            else:
                tool_input = loads_object(as_str(item.get("arguments"))) or {}
            block: dict[str, Any] | None = {
                "type": "tool_use",
                "id": claude_tool_id(as_str(item.get("call_id"))),
                "name": name,
                "input": tool_input,
            }
            entries.append(("assistant", as_dict(block)))
        elif kind in ("function_call_output", "custom_tool_call_output"):
            # The last output for a call id wins (CPA).
            outputs[claude_tool_id(as_str(item.get("call_id")))] = item.get("output")
        elif kind == "reasoning":
            block = _thinking_block(item)
            if block is not None:
                entries.append(("assistant", block))
    return system, entries, outputs


def _thinking_block(item: dict[str, Any]) -> dict[str, Any] | None:
    signature = as_str(item.get("encrypted_content"))
    if signature.startswith(REDACTED_PREFIX):
        return {"type": "redacted_thinking", "data": signature[len(REDACTED_PREFIX) :]}
    if not is_anthropic_signature(signature):
        return None  # Codex's own reasoning (gAAAA…) or ours: Claude cannot replay it
    return {"type": "thinking", "thinking": summary_text(item), "signature": signature}


def _plain_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(
        as_str(as_dict(p).get("text")) for p in as_list(content) if as_str(as_dict(p).get("text"))
    )


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for part in as_list(content):
        part = as_dict(part)
        kind = part.get("type")
        if kind in ("input_text", "output_text", "text") and as_str(part.get("text")):
            blocks.append({"type": "text", "text": part["text"]})
        elif kind == "refusal" and as_str(part.get("refusal")):
            blocks.append({"type": "text", "text": part["refusal"]})
        elif kind == "input_image":
            blocks.append(_image(part))
        elif kind == "input_file":
            blocks.append(_document(part))
    return blocks


def _data_url(url: str) -> tuple[str, str] | None:
    head, sep, data = url.partition(",")
    if url.startswith("data:") and sep and head.endswith(";base64"):
        return head[5:-7], data
    return None


def _image(part: dict[str, Any]) -> dict[str, Any]:
    url = as_str(part.get("image_url")) or as_str(as_dict(part.get("image_url")).get("url"))
    decoded = _data_url(url)
    if decoded is not None:
        source = {"type": "base64", "media_type": decoded[0], "data": decoded[1]}
        return {"type": "image", "source": source}
    if url:
        return {"type": "image", "source": {"type": "url", "url": url}}
    return {"type": "text", "text": f"[image file_id: {as_str(part.get('file_id'))}]"}


def _document(part: dict[str, Any]) -> dict[str, Any]:
    decoded = _data_url(as_str(part.get("file_data")))
    if decoded is not None:
        source = {"type": "base64", "media_type": decoded[0], "data": decoded[1]}
        return {"type": "document", "source": source}
    if as_str(part.get("file_url")):
        return {"type": "document", "source": {"type": "url", "url": part["file_url"]}}
    return {
        "type": "text",
        "text": f"[file: {as_str(part.get('filename')) or as_str(part.get('file_id'))}]",
    }


def tool_result_content(output: Any) -> Any:
    if isinstance(output, str):
        return output
    blocks = _blocks(output)
    return blocks if blocks else ""


def _assemble(entries: list[Entry], outputs: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages with alternating roles; every kept tool_use answered at the start of the
    next user message; calls without an output and repeated ids dropped (CP
    normalizeClaudeToolPairing)."""
    messages: list[dict[str, Any]] = []
    seen: set[str] = set()
    for role, block in entries:
        if block["type"] == "tool_use":
            if block["id"] not in outputs or block["id"] in seen:
                continue
            seen.add(block["id"])
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].append(block)
        else:
            messages.append({"role": role, "content": [block]})
    result: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if message["role"] == "assistant":
            message["content"].sort(key=lambda b: BLOCK_ORDER.get(b["type"], 2))
            result.append(message)
            calls = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
            if calls:
                results = [
                    {
                        "type": "tool_result",
                        "tool_use_id": c,
                        "content": tool_result_content(outputs[c]),
                    }
                    for c in calls
                ]
                following = messages[i + 1] if i + 1 < len(messages) else None
                if following is not None and following["role"] == "user":
                    following["content"][:0] = results
                else:
                    result.append({"role": "user", "content": results})
        else:
            result.append(message)
    if not result:
        result.append({"role": "user", "content": [{"type": "text", "text": "(no input)"}]})
    return result
