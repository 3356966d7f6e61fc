"""Claude Code on Codex accounts: a Messages request as a Codex Responses request (§2).

The caller has already chosen the Codex model (:mod:`trio_pool.translate.routing`). What
comes back is the body to send and what the stream translator needs to answer in the
client's terms (the client's model name, the shortened tool names).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from trio_pool.translate.codex_rules import (
    cap_effort,
    clamp_effort,
    codex_body,
    effort_from_budget,
    normalize_effort,
)
from trio_pool.translate.errors import TranslationError
from trio_pool.translate.fields import as_dict, as_int, as_list, as_str, dig, loads_object
from trio_pool.translate.ids import ToolNames, claude_code_cache_key
from trio_pool.translate.messages_content import (
    ContentOptions,
    convert_messages,
    input_text,
    message_item,
)
from trio_pool.translate.schema import to_parameters

BILLING_HEADER = "x-anthropic-billing-header:"
# Claude Code's compaction prompt: a summary needs no deep reasoning (RCP caps it to low).
COMPACTION_MARKER = "You are a helpful AI assistant tasked with summarizing conversations"
_LEGACY_SESSION = re.compile(r"_session_([0-9A-Za-z-]+)$")


@attrs.frozen
class CodexRequest:
    """A translated request: ``body`` for ``POST {codex}/responses``, ``headers`` to send
    besides the account's credentials, and what the stream translator needs."""

    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...]
    client_model: str
    client_stream: bool  # False: aggregate the (always streamed) upstream into one JSON
    tool_names: ToolNames


def messages_to_responses(
    body: Any,
    *,
    model: str,
    default_effort: str | None = None,
    headers: Mapping[str, str] | None = None,
    reasoning_replay: bool = True,
    system_messages: str = "developer",
    supported_efforts: Sequence[str] | None = None,
) -> CodexRequest:
    """``body`` (a parsed ``/v1/messages`` request) for the Codex model ``model``.

    ``headers`` are the client's request headers with lower-case names (only the Claude
    Code session headers are read). Raises TranslationError when ``body`` is not a
    Messages request.
    """
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        raise TranslationError("the request body must be a JSON object with a messages list")
    headers = headers or {}
    tools, names = convert_tools(body.get("tools"))
    options = ContentOptions(names, reasoning_replay, system_messages)
    items = system_items(body.get("system")) + convert_messages(body["messages"], options)
    choice, parallel = tool_choice(body.get("tool_choice"), tools, names)
    cache_key = None
    session = claude_code_session(headers, body)
    if session:
        agent = (headers.get("x-claude-code-agent-id") or "").strip() or "main"
        cache_key = claude_code_cache_key(model, session, agent)
    translated = codex_body(
        model,
        items,
        tools=tools,
        tool_choice=choice,
        parallel_tool_calls=parallel,
        reasoning=reasoning(body, default_effort, supported_efforts),
        prompt_cache_key=cache_key,
        service_tier="priority" if body.get("speed") == "fast" else None,
        text=text_format(body),
    )
    sent_headers = [("content-type", "application/json"), ("accept", "text/event-stream")]
    if cache_key:
        sent_headers.append(("session-id", cache_key))  # CPA: the same key, both places
    return CodexRequest(
        translated,
        tuple(sent_headers),
        as_str(body.get("model")),
        body.get("stream") is True,
        names,
    )


def system_texts(system: Any) -> list[str]:
    """The system prompt's texts, without Claude Code's billing attribution line (it
    identifies Claude Code to Anthropic and means nothing to Codex)."""
    if isinstance(system, str):
        return [system] if system else []
    texts = []
    for block in as_list(system):
        text = as_str(as_dict(block).get("text"))
        if text and not text.startswith(BILLING_HEADER):
            texts.append(text)
    return texts


def system_items(system: Any) -> list[dict[str, Any]]:
    texts = system_texts(system)
    return [message_item("developer", [input_text(t) for t in texts])] if texts else []


def convert_tools(tools: Any) -> tuple[list[dict[str, Any]], ToolNames]:
    declared = [as_dict(t) for t in as_list(tools)]

    def is_function(tool: dict[str, Any]) -> bool:
        return tool.get("type") in (None, "custom") and bool(as_str(tool.get("name")))

    names = ToolNames.build(t["name"] for t in declared if is_function(t))
    converted: list[dict[str, Any]] = []
    sent: set[str] = set()
    for tool in declared:
        kind = as_str(tool.get("type"))
        if is_function(tool):
            name = names.short(tool["name"])
            if name in sent:
                continue  # a tool declared twice: the backend refuses duplicate names
            sent.add(name)
            function: dict[str, Any] = {"type": "function", "name": name}
            if isinstance(tool.get("description"), str):
                function["description"] = tool["description"]
            function["parameters"] = to_parameters(tool.get("input_schema"))
            function["strict"] = False
            converted.append(function)
        elif kind.startswith("web_search_") and "web_search" not in sent:
            sent.add("web_search")
            search: dict[str, Any] = {"type": "web_search"}
            domains = as_list(tool.get("allowed_domains"))
            if domains:
                search["filters"] = {"allowed_domains": domains}
            if isinstance(tool.get("user_location"), dict):
                search["user_location"] = tool["user_location"]
            converted.append(search)
        # Anthropic's other server tools (bash, text_editor, code_execution…) have no
        # Codex equivalent: dropped [prop].
    return converted, names


def tool_choice(choice: Any, tools: list[dict[str, Any]], names: ToolNames) -> tuple[Any, bool]:
    choice = as_dict(choice)
    parallel = choice.get("disable_parallel_tool_use") is not True
    kind = choice.get("type")
    if not tools or kind in (None, "auto"):
        return ("auto" if tools else None), parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        name = names.short(as_str(choice.get("name")))
        if any(t.get("type") == "function" and t.get("name") == name for t in tools):
            return {"type": "function", "name": name}, parallel
    # Never force a tool that is not a registered function (RCP: the upstream 502s).
    return "auto", parallel


def reasoning(
    body: dict[str, Any], default_effort: str | None, supported: Sequence[str] | None
) -> dict[str, Any]:
    thinking = as_dict(body.get("thinking"))
    kind = thinking.get("type")
    asked = as_str(dig(body, "output_config", "effort"))
    if kind == "disabled":
        effort = "none"
    elif kind == "enabled":
        effort = effort_from_budget(as_int(thinking.get("budget_tokens")))
    else:
        # adaptive (Claude Code 2.1.330 sends it with output_config.effort) or absent
        effort = normalize_effort(asked or default_effort or "medium")
    if any(COMPACTION_MARKER in text for text in system_texts(body.get("system"))):
        effort = cap_effort(effort, "low")
    effort = clamp_effort(effort, supported)
    result: dict[str, Any] = {"effort": effort}
    # Summaries only when the client shows thinking; an explicit null summary is not
    # accepted by every backend, so "omitted" leaves the key out (CPA thinking/summary.go).
    shown = kind in ("enabled", "adaptive") and thinking.get("display") != "omitted"
    if shown and effort != "none":
        result["summary"] = "auto"
    return result


def text_format(body: dict[str, Any]) -> dict[str, Any] | None:
    fmt = as_dict(dig(body, "output_config", "format"))
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        return None
    name = as_str(fmt.get("name")) or "output"
    # strict: false for the same reason as tools: strict mode rewrites `required`.
    return {
        "format": {"type": "json_schema", "name": name, "schema": fmt["schema"], "strict": False}
    }


def claude_code_session(headers: Mapping[str, str], body: Mapping[str, Any]) -> str | None:
    """Claude Code's session: the header, else ``metadata.user_id`` (JSON string in 2.1.x,
    ``…_session_<uuid>`` before), protocols.md §2.9."""
    header = (headers.get("x-claude-code-session-id") or "").strip()
    if header:
        return header
    user_id = as_str(dig(body, "metadata", "user_id"))
    if user_id.startswith("{"):
        session = as_str(as_dict(loads_object(user_id)).get("session_id"))
        return session or None
    match = _LEGACY_SESSION.search(user_id)
    return match.group(1) if match else None
