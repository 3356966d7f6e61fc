"""Anthropic message content as Responses input items (translation.md §2, request (A)).

Order is kept: an assistant turn becomes its reasoning, text and function_call items in
the order of its blocks; a user turn's tool_results become function_call_output items at
their position, its other blocks user messages between them.

Pairing (the backend refuses both "No tool call found for function call output" and "No
tool output found for function call", CPA#3688, openai/codex#93):
- a tool_result whose tool_use did not come earlier is dropped, and so is a second result
  for the same id;
- a tool_use without a result is dropped unless it is in the last message;
- a repeated tool_use id keeps its first use (claude-code#20901: "tool_use ids must be
  unique") [prop].
"""

from __future__ import annotations

from typing import Any

import attrs

from trio_pool.translate.fields import as_bool_true, as_dict, as_list, as_str, dumps
from trio_pool.translate.ids import ToolNames, short_call_id
from trio_pool.translate.signatures import decode_signature

TOOL_ERROR_PREFIX = "[tool execution error]"  # RCP's marker for is_error results


@attrs.frozen
class ContentOptions:
    tool_names: ToolNames = attrs.field(factory=ToolNames)
    reasoning_replay: bool = True
    system_messages: str = "developer"  # or "reminder": a <system-reminder> user text


def message_item(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": parts}


def input_text(text: str) -> dict[str, Any]:
    return {"type": "input_text", "text": text}


def convert_messages(messages: list[Any], options: ContentOptions) -> list[dict[str, Any]]:
    calls, outputs = _pairing(messages)
    items: list[dict[str, Any]] = []
    emitted_calls: set[str] = set()
    emitted_outputs: set[str] = set()
    for index, message in enumerate(messages):
        message = as_dict(message)
        role = message.get("role")
        content = message.get("content")
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        blocks = [b for b in as_list(blocks) if isinstance(b, dict)]
        if role == "assistant":
            items.extend(_assistant(blocks, calls, emitted_calls, options))
        elif role == "system":
            text = "\n\n".join(as_str(b.get("text")) for b in blocks if as_str(b.get("text")))
            if not text:
                continue
            if options.system_messages == "reminder":
                wrapped = f"<system-reminder>\n{text}\n</system-reminder>"
                items.append(message_item("user", [input_text(wrapped)]))
            else:
                items.append(message_item("developer", [input_text(text)]))
        elif role == "user":
            items.extend(_user(index, blocks, outputs, emitted_outputs))
    return items


def _pairing(messages: list[Any]) -> tuple[set[str], dict[str, int]]:
    """The tool_use ids to send, and for each the message index of the result to send."""
    used_at: dict[str, int] = {}
    result_at: dict[str, int] = {}
    for index, message in enumerate(messages):
        message = as_dict(message)
        for block in as_list(message.get("content")):
            block = as_dict(block)
            if message.get("role") == "assistant" and block.get("type") == "tool_use":
                used_at.setdefault(as_str(block.get("id")), index)
            elif message.get("role") == "user" and block.get("type") == "tool_result":
                call = as_str(block.get("tool_use_id"))
                if call in used_at and used_at[call] < index:
                    result_at.setdefault(call, index)
    last = len(messages) - 1
    calls = {c for c, at in used_at.items() if c and (c in result_at or at == last)}
    return calls, {c: at for c, at in result_at.items() if c in calls}


def _assistant(
    blocks: list[dict[str, Any]], calls: set[str], emitted: set[str], options: ContentOptions
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    texts: list[dict[str, Any]] = []

    def flush() -> None:
        if texts:
            items.append(message_item("assistant", list(texts)))
            texts.clear()

    for block in blocks:
        kind = block.get("type")
        if kind == "text" and as_str(block.get("text")):
            texts.append({"type": "output_text", "text": block["text"]})
        elif kind == "thinking" and options.reasoning_replay:
            item = _reasoning(block)
            if item is not None:
                flush()
                items.append(item)
        elif kind == "tool_use":
            call_id = as_str(block.get("id"))
            if call_id not in calls or call_id in emitted:
                continue
            emitted.add(call_id)
            flush()
            name = options.tool_names.short(as_str(block.get("name")))
            arguments = dumps(block["input"]) if isinstance(block.get("input"), dict) else "{}"
            items.append(
                {
                    "type": "function_call",
                    "call_id": short_call_id(call_id),
                    "name": name,
                    "arguments": arguments,
                }
            )
        # redacted_thinking, server tool blocks and foreign thinking have no Codex form.
    flush()
    # A reasoning item must be followed by an item of its turn, or the backend refuses it.
    while items and items[-1]["type"] == "reasoning":
        items.pop()
    return items


def _reasoning(block: dict[str, Any]) -> dict[str, Any] | None:
    decoded = decode_signature(as_str(block.get("signature")))
    if decoded is None:
        return None  # Anthropic's own signature, or none: nothing Codex can replay
    item_id, encrypted = decoded
    item: dict[str, Any] = {"type": "reasoning"}
    # Sent item ids need their kind's prefix and at most 64 characters (codex_input_ids.go).
    if item_id.startswith("rs_") and len(item_id) <= 64:
        item["id"] = item_id
    item["summary"] = []
    item["encrypted_content"] = encrypted
    return item


def _user(
    index: int, blocks: list[dict[str, Any]], outputs: dict[str, int], emitted: set[str]
) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for block in blocks:
        if block.get("type") == "tool_result":
            call_id = as_str(block.get("tool_use_id"))
            if outputs.get(call_id) != index or call_id in emitted:
                continue
            emitted.add(call_id)
            if parts:
                items.append(message_item("user", parts))
                parts = []
            items.append(
                {
                    "type": "function_call_output",
                    "call_id": short_call_id(call_id),
                    "output": tool_output(block),
                }
            )
            continue
        parts.extend(input_parts(block))
    if parts:
        items.append(message_item("user", parts))
    return items


def input_parts(block: dict[str, Any]) -> list[dict[str, Any]]:
    """One user content block as Responses input parts (none when it has no form there)."""
    kind = block.get("type")
    if kind == "text":
        text = as_str(block.get("text"))
        return [input_text(text)] if text else []
    if kind == "image":
        source = as_dict(block.get("source"))
        if source.get("type") == "base64":
            media = as_str(source.get("media_type"), "image/png")
            url = f"data:{media};base64,{as_str(source.get('data'))}"
            return [{"type": "input_image", "image_url": url}]
        if source.get("type") == "url" and as_str(source.get("url")):
            return [{"type": "input_image", "image_url": source["url"]}]
        return []
    if kind == "document":
        return _document(block)
    if kind == "tool_reference":
        return [input_text(f"[Loaded tool: {as_str(block.get('tool_name'))}]")]
    if kind == "search_result":
        texts = [as_str(as_dict(p).get("text")) for p in as_list(block.get("content"))]
        return [input_text("\n".join(t for t in texts if t))] if any(texts) else []
    return []


def _document(block: dict[str, Any]) -> list[dict[str, Any]]:
    source = as_dict(block.get("source"))
    kind = source.get("type")
    filename = as_str(block.get("title")) or "document.pdf"
    if kind == "base64":
        media = as_str(source.get("media_type"), "application/pdf")
        data = f"data:{media};base64,{as_str(source.get('data'))}"
        return [{"type": "input_file", "file_data": data, "filename": filename}]
    if kind == "url" and as_str(source.get("url")):
        return [{"type": "input_file", "file_url": source["url"]}]
    if kind == "text" and as_str(source.get("data")):
        return [input_text(source["data"])]
    if kind == "content":
        return [p for part in as_list(source.get("content")) for p in input_parts(as_dict(part))]
    return []


def tool_output(block: dict[str, Any]) -> str | list[dict[str, Any]]:
    """A tool_result's content as a function_call_output ``output``.

    Text only -> one string (parts joined by newlines); with images or files -> a list of
    input parts. ``is_error`` prefixes the first text with RCP's marker.
    """
    content = block.get("content")
    if isinstance(content, str):
        parts = [input_text(content)] if content else []
    else:
        parts = [p for b in as_list(content) if isinstance(b, dict) for p in input_parts(b)]
    if as_bool_true(block.get("is_error")):
        first_text = next((p for p in parts if p["type"] == "input_text"), None)
        if first_text is None:
            parts.insert(0, input_text(TOOL_ERROR_PREFIX))
        else:
            first_text["text"] = f"{TOOL_ERROR_PREFIX}\n{first_text['text']}"
    if all(p["type"] == "input_text" for p in parts):
        return "\n".join(p["text"] for p in parts)
    return parts
