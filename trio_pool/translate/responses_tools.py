"""Codex's tools as Claude tools, and Claude's tool calls back as Codex's (§4.1).

Codex declares plain ``function`` tools, freeform ``custom`` tools (raw text input, e.g.
``apply_patch`` and 0.169's ``exec``) and ``namespace`` groups of both, in ``tools`` or,
in the responses-lite shape, in an ``additional_tools`` input item. Claude only has flat
JSON tools, so:
- a namespaced tool becomes ``<namespace>__<name>`` (``mcp__*`` names are kept) (CPA);
- a custom tool takes one string property ``input``, and its calls go back to Codex as
  ``custom_tool_call`` with the raw text, or Codex never runs them (CPA#5753, 9router#1371);
- names are fitted to Anthropic's ``^[a-zA-Z0-9_-]{1,64}$`` and kept unique.
"""

from __future__ import annotations

from typing import Any

import attrs

from trio_pool.translate.fields import as_dict, as_list, as_str
from trio_pool.translate.ids import MAX_NAME, claude_tool_name
from trio_pool.translate.schema import CUSTOM_TOOL_SCHEMA, to_input_schema

# Hosted tools with no Claude counterpart (CPA drops them too).
DROPPED_HOSTED = frozenset(
    {"image_generation", "file_search", "code_interpreter", "computer_use_preview", "local_shell"}
)


@attrs.frozen
class CodexTool:
    """What a Claude tool name stands for on the Codex side."""

    kind: str  # "function" | "custom"
    name: str
    namespace: str = ""


@attrs.frozen
class ToolTable:
    tools: list[dict[str, Any]]  # the Claude ``tools``
    by_claude_name: dict[str, CodexTool]
    by_identity: dict[tuple[str, str], str]  # (namespace, name) -> Claude name

    def claude_name(self, namespace: str, name: str) -> str:
        found = self.by_identity.get((namespace, name))
        return found if found is not None else flat_name(namespace, name)

    def codex_tool(self, claude_name: str) -> CodexTool:
        found = self.by_claude_name.get(claude_name)
        if found is not None:
            return found
        namespace, sep, name = claude_name.partition("__")
        if sep and namespace != "mcp":
            return CodexTool("function", name, namespace)
        return CodexTool("function", claude_name)


def flat_name(namespace: str, name: str) -> str:
    flat = f"{namespace}__{name}" if namespace and not name.startswith("mcp__") else name
    return claude_tool_name(flat)[:MAX_NAME]


def declared_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """``tools`` plus the tools of every ``additional_tools`` input item, in order."""
    tools = [as_dict(t) for t in as_list(body.get("tools"))]
    for item in as_list(body.get("input")):
        if as_dict(item).get("type") == "additional_tools":
            tools.extend(as_dict(t) for t in as_list(item.get("tools")))
    return tools


def build_tool_table(body: dict[str, Any]) -> ToolTable:
    tools: list[dict[str, Any]] = []
    by_claude_name: dict[str, CodexTool] = {}
    by_identity: dict[tuple[str, str], str] = {}

    def add(tool: dict[str, Any], namespace: str) -> None:
        kind, name = as_str(tool.get("type")), as_str(tool.get("name"))
        if kind not in ("function", "custom") or not name or (namespace, name) in by_identity:
            return
        base = candidate = flat_name(namespace, name)
        n = 0
        while candidate in by_claude_name:
            n += 1
            candidate = f"{base[: MAX_NAME - len(str(n)) - 1]}_{n}"
        by_identity[(namespace, name)] = candidate
        by_claude_name[candidate] = CodexTool(kind, name, namespace)
        claude: dict[str, Any] = {"name": candidate}
        if isinstance(tool.get("description"), str):
            claude["description"] = tool["description"]
        if kind == "custom":
            claude["input_schema"] = CUSTOM_TOOL_SCHEMA
        else:
            claude["input_schema"] = to_input_schema(tool.get("parameters"))
        tools.append(claude)

    for tool in declared_tools(body):
        kind = as_str(tool.get("type"))
        if kind == "namespace":
            for child in as_list(tool.get("tools")):
                add(as_dict(child), as_str(tool.get("name")))
        elif kind in ("function", "custom"):
            add(tool, "")
        elif kind in ("web_search", "web_search_preview"):
            if tool.get("external_web_access") is False:
                continue
            search: dict[str, Any] = {"type": "web_search_20250305", "name": "web_search"}
            domains = as_list(as_dict(tool.get("filters")).get("allowed_domains"))
            if domains:
                search["allowed_domains"] = domains
            tools.append(search)
        # DROPPED_HOSTED and unknown kinds: no Claude form.
    return ToolTable(tools, by_claude_name, by_identity)


def claude_tool_choice(choice: Any, parallel: Any, table: ToolTable) -> dict[str, Any] | None:
    """Responses ``tool_choice`` as Anthropic's; None means "send no tool_choice"."""
    result: dict[str, Any] | None
    if choice == "required":
        result = {"type": "any"}
    elif choice == "none":
        return None
    elif isinstance(choice, dict) and as_str(choice.get("name")):
        name = table.claude_name(as_str(choice.get("namespace")), choice["name"])
        result = (
            {"type": "tool", "name": name} if name in table.by_claude_name else {"type": "auto"}
        )
    else:
        result = {"type": "auto"}
    if parallel is False:
        result["disable_parallel_tool_use"] = True
    return result
