"""Request bodies shaped like the captures in real-clients.md (Claude Code 2.1.330 in
subscriber mode, Codex 0.169.0's responses-lite turn), shortened where the text does not
matter."""

from __future__ import annotations

import json
from typing import Any

SESSION = "0b6f5c2e-3d1a-4f7e-9c2b-5a8d7e6f1a20"


def claude_code_oauth_body() -> dict[str, Any]:
    """``POST /v1/messages?beta=true`` from ``claude -p "say hi"`` with an OAuth login."""
    user_id = json.dumps({"device_id": "ab" * 32, "account_uuid": "", "session_id": SESSION})
    bash = {
        "name": "Bash",
        "description": "Executes a given bash command and returns its output.",
        "input_schema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command to execute"},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600000},
            },
            "required": ["command"],
            "additionalProperties": False,
        },
    }
    deferred = {
        "name": "WebFetch",
        "description": "Fetches a URL.",
        "input_schema": {"type": "object", "properties": {"url": {"type": "string"}}},
        "defer_loading": True,
    }
    return {
        "model": "claude-opus-5-5",
        "messages": [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "<system-reminder>\nAs you answer, keep it short.\n</system-reminder>",
                    },
                    {"type": "text", "text": "say hi"},
                ],
            },
            {
                "role": "system",
                "content": [
                    {
                        "type": "text",
                        "text": "# Environment\nWorking directory: /tmp/w\nPlatform: linux",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ],
            },
        ],
        "system": [
            {
                "type": "text",
                "text": "x-anthropic-billing-header: cc_version=2.1.330.440; cc_entrypoint=sdk-cli;",
            },
            {
                "type": "text",
                "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
            },
            {
                "type": "text",
                "text": "Use the tools available to you to help the user.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
            {
                "type": "text",
                "text": "Be concise.",
                "cache_control": {"type": "ephemeral", "ttl": "1h"},
            },
        ],
        "tools": [bash, deferred],
        "metadata": {"user_id": user_id},
        "max_tokens": 128000,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "stream": True,
    }


def codex_lite_body() -> dict[str, Any]:
    """``POST /v1/responses`` from ``codex exec "say hi"`` (0.169.0, responses-lite)."""
    exec_tool = {
        "type": "custom",
        "name": "exec",
        "description": "Run JavaScript.",
        "format": {"type": "text"},
    }
    wait_tool = {
        "type": "function",
        "name": "wait",
        "description": "Wait for a background task.",
        "parameters": {
            "type": "object",
            "properties": {"ms": {"type": "number"}},
            "required": ["ms"],
        },
    }
    namespace = {"type": "namespace", "name": "functions", "tools": [exec_tool, wait_tool]}

    def dev(text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": text}],
        }

    def usr(text: str) -> dict[str, Any]:
        return {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": text}],
        }

    return {
        "model": "gpt-6.1-sol",
        "stream": True,
        "input": [
            {"type": "additional_tools", "role": "developer", "tools": [namespace]},
            dev("You are Codex, a coding agent."),
            dev("<permissions instructions>sandbox: workspace-write</permissions instructions>"),
            dev("<apps_instructions>none</apps_instructions>"),
            dev("<collaboration_mode>default</collaboration_mode>"),
            usr("<environment_context><cwd>/tmp/w</cwd></environment_context>"),
            usr("say hi"),
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "reasoning": {"effort": "low", "context": "all_turns"},
        "store": False,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019a7f6e-1b2c-7d3e-8f4a-5b6c7d8e9f01",
        "text": {"verbosity": "low"},
        "client_metadata": {"x-codex-installation-id": "inst-1"},
    }
