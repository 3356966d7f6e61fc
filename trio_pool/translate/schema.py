"""Tool schemas between Anthropic's ``input_schema`` and the Responses ``parameters``.

The Codex backend checks schemas harder than Anthropic does:
- it compiles every ``pattern`` with a regex engine that knows neither ``\\p{..}`` classes
  nor look-around: "Invalid schema for function 'Artifact': '…' is not a 'regex'"
  (RCP#141, CPA#5672), so those patterns are dropped (others are kept);
- with ``strict`` omitted it turns strict mode on and rewrites ``required`` to every
  property (LL), so tools are always sent with ``strict: false``;
- a schema without ``type``/``properties`` fails ("got 'type: null'", cc-switch#4901), so
  the top level is normalised to an object (CPA normalizeToolParameters).
"""

from __future__ import annotations

import copy
import re
from typing import Any

# Keywords whose value maps *names* to schemas: their keys are property names, never
# keywords (a property may well be called "pattern").
_NAMED_SCHEMAS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_UNSUPPORTED_REGEX = re.compile(r"\\[pP]\{|\(\?<?[=!]")
_DROPPED_KEYWORDS = frozenset({"$schema"})


def pattern_supported(pattern: Any) -> bool:
    return isinstance(pattern, str) and not _UNSUPPORTED_REGEX.search(pattern)


def clean(schema: Any) -> Any:
    """A copy of a JSON schema without ``$schema`` and without unsupported patterns."""
    if isinstance(schema, list):
        return [clean(item) for item in schema]
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED_KEYWORDS:
            continue
        if key == "pattern" and not pattern_supported(value):
            continue
        if key in _NAMED_SCHEMAS and isinstance(value, dict):
            result[key] = {name: clean(sub) for name, sub in value.items()}
        else:
            result[key] = clean(value)
    return result


def to_parameters(input_schema: Any) -> dict[str, Any]:
    """An Anthropic ``input_schema`` as Responses function ``parameters``."""
    cleaned = clean(input_schema) if isinstance(input_schema, dict) else {}
    if cleaned.get("type") in (None, ""):
        cleaned = {"type": "object", **{k: v for k, v in cleaned.items() if k != "type"}}
    if cleaned.get("type") == "object" and not isinstance(cleaned.get("properties"), dict):
        cleaned["properties"] = {}
    return cleaned


def to_input_schema(parameters: Any) -> dict[str, Any]:
    """Responses ``parameters`` as an Anthropic ``input_schema`` (an object schema)."""
    if not isinstance(parameters, dict):
        return {"type": "object", "properties": {}}
    schema = copy.deepcopy(parameters)
    if schema.get("type") != "object":
        schema["type"] = "object"
    if not isinstance(schema.get("properties"), dict):
        schema["properties"] = {}
    return schema


# Codex's freeform ("custom") tools take raw text; Claude only has JSON tools, so the text
# travels as the one string property "input" (CPA).
CUSTOM_TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string"}},
    "required": ["input"],
}
