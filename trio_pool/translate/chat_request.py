"""OpenAI Chat Completions clients on either provider: the request (§5).

A Chat request is first read into a provider-neutral Responses body (it keeps
``max_output_tokens``), then finished for its upstream: the Codex rules for Codex accounts
(:func:`chat_to_codex`), or the Responses -> Messages translator for Claude accounts
(:func:`chat_to_claude`, only with the ``codex_on_claude`` opt-in, see routing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trio_pool.translate.codex_rules import clamp_effort, codex_body, normalize_effort
from trio_pool.translate.errors import TranslationError
from trio_pool.translate.fields import as_dict, as_int, as_list, as_str
from trio_pool.translate.ids import ToolNames, short_call_id
from trio_pool.translate.messages_to_responses import CodexRequest
from trio_pool.translate.responses_to_messages import ClaudeRequest, responses_to_messages
from trio_pool.translate.schema import clean, to_parameters


def chat_to_neutral(body: Any) -> dict[str, Any]:
    """The Chat request as a Responses body, before any provider's rules."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise TranslationError("the request body must be a JSON object with a messages list")
    out: dict[str, Any] = {"model": as_str(body.get("model")), "input": _items(body["messages"])}
    tools = [t for t in (_tool(as_dict(t)) for t in as_list(body.get("tools"))) if t]
    if tools:
        out["tools"] = tools
        out["tool_choice"] = _tool_choice(body.get("tool_choice"))
    if isinstance(body.get("parallel_tool_calls"), bool):
        out["parallel_tool_calls"] = body["parallel_tool_calls"]
    effort = as_str(body.get("reasoning_effort"))
    if effort:
        out["reasoning"] = {"effort": effort}
    text = _text_format(as_dict(body.get("response_format")))
    if text:
        out["text"] = text
    limit = as_int(body.get("max_completion_tokens")) or as_int(body.get("max_tokens"))
    if limit > 0:
        out["max_output_tokens"] = limit
    if as_str(body.get("prompt_cache_key")):
        out["prompt_cache_key"] = body["prompt_cache_key"]
    out["stream"] = body.get("stream") is True
    return out


def chat_to_codex(
    body: Any,
    *,
    model: str,
    default_effort: str | None = None,
    supported_efforts: Sequence[str] | None = None,
) -> CodexRequest:
    neutral = chat_to_neutral(body)
    tools = neutral.get("tools", [])
    names = ToolNames.build(as_str(t.get("name")) for t in tools)
    for tool in tools:
        tool["name"] = names.short(tool["name"])
    for item in neutral["input"]:
        if item.get("type") in ("function_call", "custom_tool_call"):
            item["name"] = names.short(as_str(item.get("name")))
    choice = neutral.get("tool_choice")
    if isinstance(choice, dict):
        choice["name"] = names.short(as_str(choice.get("name")))
    asked = as_str(as_dict(neutral.get("reasoning")).get("effort"))
    effort = clamp_effort(normalize_effort(asked or default_effort or "medium"), supported_efforts)
    # Chat is the one protocol where an effort implies summaries (CPA summary.go).
    reasoning = {"effort": effort, **({"summary": "auto"} if effort != "none" else {})}
    translated = codex_body(
        model,
        neutral["input"],
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=neutral.get("parallel_tool_calls", True),
        reasoning=reasoning,
        prompt_cache_key=neutral.get("prompt_cache_key"),
        text=neutral.get("text"),
    )
    headers = (("content-type", "application/json"), ("accept", "text/event-stream"))
    return CodexRequest(translated, headers, neutral["model"], neutral["stream"], names)


def chat_to_claude(body: Any, *, model: str, default_effort: str | None = None) -> ClaudeRequest:
    neutral = chat_to_neutral(body)
    translated = responses_to_messages(neutral, model=model, default_effort=default_effort)
    out = translated.body
    # Claude takes these, Codex does not; temperature is not forwarded (CPA).
    if isinstance(body.get("top_p"), int | float) and not isinstance(body["top_p"], bool):
        out["top_p"] = body["top_p"]
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [s for s in as_list(stop) if isinstance(s, str)]
    if stops:
        out["stop_sequences"] = stops
    return ClaudeRequest(
        out, translated.headers, neutral["model"], neutral["stream"], translated.tools
    )


def _items(messages: list[Any]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        message = as_dict(message)
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            text = _text(content)
            if text:
                items.append(_message("developer", [{"type": "input_text", "text": text}]))
        elif role == "user":
            parts = _user_parts(content)
            if parts:
                items.append(_message("user", parts))
        elif role == "assistant":
            text = _text(content) or as_str(message.get("refusal"))
            if text:
                items.append(_message("assistant", [{"type": "output_text", "text": text}]))
            for j, call in enumerate(as_list(message.get("tool_calls"))):
                items.extend(_call(as_dict(call), i, j))
        elif role == "tool":
            call_id = short_call_id(as_str(message.get("tool_call_id")))
            items.append(
                {"type": "function_call_output", "call_id": call_id, "output": _text(content)}
            )
    return _pair(items)


def _message(role: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "message", "role": role, "content": parts}


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    texts = [as_str(as_dict(p).get("text")) for p in as_list(content)]
    return "\n".join(t for t in texts if t)


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}] if content else []
    parts: list[dict[str, Any]] = []
    for part in as_list(content):
        part = as_dict(part)
        kind = part.get("type")
        if kind == "text" and as_str(part.get("text")):
            parts.append({"type": "input_text", "text": part["text"]})
        elif kind == "image_url":
            url = as_str(as_dict(part.get("image_url")).get("url")) or as_str(part.get("image_url"))
            if url:
                parts.append({"type": "input_image", "image_url": url})
        elif kind == "file":
            file = as_dict(part.get("file"))
            entry: dict[str, Any] = {"type": "input_file"}
            for key in ("file_data", "file_id", "filename"):
                if as_str(file.get(key)):
                    entry[key] = file[key]
            if len(entry) > 1:
                parts.append(entry)
    return parts


def _call(call: dict[str, Any], i: int, j: int) -> list[dict[str, Any]]:
    call_id = short_call_id(as_str(call.get("id")) or f"call_missing_{i}_{j}")
    if call.get("type") == "custom":
        custom = as_dict(call.get("custom"))
        name, raw = as_str(custom.get("name")), as_str(custom.get("input"))
        return [{"type": "custom_tool_call", "call_id": call_id, "name": name, "input": raw}]
    function = as_dict(call.get("function"))
    arguments = as_str(function.get("arguments")) or "{}"
    name = as_str(function.get("name"))
    return [{"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}]


def _pair(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Calls answered by a later output and outputs answering an earlier call, once each.

    A Chat request always asks for a new turn, so an unanswered call anywhere would be
    refused ("No tool output found for function call"); it is dropped.
    """
    calls: dict[str, str] = {}
    answered: set[str] = set()
    for item in items:
        call_id = as_str(item.get("call_id"))
        if item["type"] in ("function_call", "custom_tool_call"):
            calls.setdefault(call_id, item["type"])
        elif item["type"] == "function_call_output" and call_id in calls:
            answered.add(call_id)
    kept: list[dict[str, Any]] = []
    sent: set[str] = set()
    for item in items:
        call_id = as_str(item.get("call_id"))
        if item["type"] in ("function_call", "custom_tool_call"):
            if call_id not in answered or call_id in sent:
                continue
            sent.add(call_id)
        elif item["type"] == "function_call_output":
            if call_id not in sent or calls.pop(call_id, None) is None:
                continue  # no earlier call, or a second output for it
            if _was_custom(items, call_id):
                item = {**item, "type": "custom_tool_call_output"}
        kept.append(item)
    return kept


def _was_custom(items: list[dict[str, Any]], call_id: str) -> bool:
    return any(i["type"] == "custom_tool_call" and i.get("call_id") == call_id for i in items)


def _tool(tool: dict[str, Any]) -> dict[str, Any] | None:
    if tool.get("type") == "custom":
        custom = as_dict(tool.get("custom"))
        if not as_str(custom.get("name")):
            return None
        return {"type": "custom", **{k: v for k, v in custom.items() if k != "type"}}
    function = as_dict(tool.get("function"))
    if tool.get("type") != "function" or not as_str(function.get("name")):
        return None
    out: dict[str, Any] = {"type": "function", "name": function["name"]}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    out["parameters"] = to_parameters(clean(function.get("parameters")))
    out["strict"] = False
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    name = as_str(as_dict(as_dict(choice).get("function")).get("name"))
    return {"type": "function", "name": name} if name else "auto"


def _text_format(response_format: dict[str, Any]) -> dict[str, Any] | None:
    kind = response_format.get("type")
    if kind == "json_object":
        return {"format": {"type": "json_object"}}
    if kind == "json_schema":
        spec = as_dict(response_format.get("json_schema"))
        fmt: dict[str, Any] = {"type": "json_schema", "name": as_str(spec.get("name")) or "output"}
        fmt["schema"] = spec.get("schema") if isinstance(spec.get("schema"), dict) else {}
        fmt["strict"] = spec.get("strict") is True
        return {"format": fmt}
    return None
