"""The smallest JSON value that fits a (JSON Schema or Gemini ``responseSchema``) schema.

Gemini CLI's model router asks ``generateContent`` for JSON with a schema
(``{reasoning: string, model_choice: enum [flash, pro]}``) and retries five times on free
text (real-clients.md §6), so JSON-mode answers must fit the schema.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 16


def minimal_instance(schema: Any, depth: int = 0) -> Any:
    """A value valid for ``schema``: first enum value, every listed property, minimal items."""
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return "sim"
    if "const" in schema:
        return schema["const"]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return enum[0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        options = schema.get(combinator)
        if isinstance(options, list) and options:
            return minimal_instance(options[0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    kind = (
        str(kind).lower()
        if kind is not None
        else ("object" if "properties" in schema else "string")
    )
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: minimal_instance(sub, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = int(schema.get("minItems") or 0)
        return [minimal_instance(schema.get("items"), depth + 1) for _ in range(count)]
    if kind in ("integer", "number"):
        minimum = schema.get("minimum", 0)
        return int(minimum) if kind == "integer" else float(minimum)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    min_length = int(schema.get("minLength") or 0)
    return "Simulated answer.".ljust(min_length, ".")
