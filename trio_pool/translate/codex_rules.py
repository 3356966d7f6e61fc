"""The Codex backend's own rules for a Responses request (translation.md §2, §7).

The ChatGPT Codex backend is not the public Responses API:
- ``store`` must be false ("Store must be set to false", CPA#41) and ``instructions``
  present ("Instructions are required", CPA#2422) but left empty: non-default
  instructions were rejected (openai/codex#2259), so system text goes into the input as a
  developer message;
- it only streams (``stream: true``);
- it refuses sampling and bookkeeping parameters with 400 "Unsupported parameter: X"
  (ChatMock#103, suna#5124, cc-router#32, dario#1009): :data:`UNSUPPORTED` is never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

UNSUPPORTED = frozenset(
    {
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "max_output_tokens",
        "max_completion_tokens",
        "presence_penalty",
        "frequency_penalty",
        "seed",
        "n",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "metadata",
        "user",
        "truncation",
        "stop",
        "stop_sequences",
        "context_management",
        "previous_response_id",
        "generate",
        "prompt_cache_retention",
        "prompt_cache_scope",
        "safety_identifier",
        "stream_options",
    }
)
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
_RANK = {name: i for i, name in enumerate(EFFORTS)}


def codex_body(
    model: str,
    items: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]],
    tool_choice: Any,
    parallel_tool_calls: bool,
    reasoning: dict[str, Any] | None,
    prompt_cache_key: str | None = None,
    service_tier: str | None = None,
    text: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Codex request body; keys in one fixed order so equal requests are equal bytes."""
    body: dict[str, Any] = {"model": model, "instructions": "", "input": items}
    if tools:
        body["tools"] = tools
        body["tool_choice"] = tool_choice if tool_choice is not None else "auto"
    body["parallel_tool_calls"] = parallel_tool_calls
    if reasoning is not None:
        body["reasoning"] = reasoning
    body["store"] = False
    body["stream"] = True
    body["include"] = ["reasoning.encrypted_content"]
    if prompt_cache_key:
        body["prompt_cache_key"] = prompt_cache_key
    if service_tier:
        body["service_tier"] = service_tier
    if text:
        body["text"] = text
    return body


def effort_from_budget(budget: int) -> str:
    """Anthropic's ``budget_tokens`` as a Codex effort (CPA ConvertBudgetToLevel)."""
    if budget <= 0:
        return "none"
    for limit, level in ((512, "minimal"), (1024, "low"), (8192, "medium"), (24576, "high")):
        if budget <= limit:
            return level
    return "xhigh"


def normalize_effort(effort: str) -> str:
    """Names Codex does not know mapped to ones it does (``max`` is Anthropic's)."""
    effort = effort.strip().lower()
    if effort == "max":
        return "xhigh"
    return effort if effort in _RANK else "medium"


def clamp_effort(effort: str, supported: Sequence[str] | None) -> str:
    """The nearest effort the model supports (its ``supported_reasoning_levels``) [prop].

    High efforts degrade downwards (xhigh -> high), low ones upwards (minimal -> low),
    like LL's fallback.
    """
    if not supported or effort in supported:
        return effort
    known = sorted((_RANK[s], s) for s in supported if s in _RANK)
    if not known:
        return effort
    rank = _RANK.get(effort, _RANK["medium"])
    below = [s for r, s in known if r < rank]
    above = [s for r, s in known if r > rank]
    if rank >= _RANK["medium"]:
        return below[-1] if below else above[0]
    return above[0] if above else below[-1]


def cap_effort(effort: str, cap: str) -> str:
    return effort if _RANK.get(effort, 3) <= _RANK[cap] else cap
