"""What the Codex backend refuses in a request's ``input`` items and ``tools``, in its words.

These come from the Responses API under the ChatGPT backend, so they are answered in its
``{"error":{message,type,param,code}}`` shape, unlike the FastAPI ``{"detail"}`` checks of
testing/codex_rules.py, which run first. Sources are GitHub reports of the real answers:

* pairing: ``No tool call found for function call output with call_id X.`` (400,
  param ``input``; vercel/ai#8216, microsoft/vscode#320060, cline#9288) and ``No tool
  output found for function call X.`` (openai/codex#93); the custom-tool twins ``No tool
  output found for custom tool call X.`` (OmniRoute#8946) and, UNVERIFIED by analogy,
  ``No tool call found for custom tool call output with call_id X.``. A call without
  output is accepted only in the trailing run of calls at the end of the input (the turn
  the client is about to answer);
* ids: ``Invalid 'input[N].id': 'X'. Expected an ID that begins with 'msg'.`` (code
  ``invalid_id_prefix``; openai/codex#33176, mastra#10815) with CPA's prefixes per item type
  (msg, rs, fc, ctc, ctco, codex_input_ids.go), and the API's length error for ids and
  call ids over 64 characters (``string too long. Expected a string with maximum length
  64, but got a string with length L instead.``, code ``string_above_max_length``);
* reasoning: ``The encrypted content for item rs_X could not be verified. Reason:
  Encrypted content could not be decrypted or parsed.`` (code
  ``invalid_encrypted_content``; openai/codex#8145, #35334, QuantumNous/new-api#4662:
  "different organisations do not share state") for content this account did not issue;
  ``Item with id 'rs_X' not found. Items are not persisted when `store` is set to false.
  …`` (404; can1357/oh-my-pi#41) for a reasoning item with an id and no content; ``Item
  'rs_X' of type 'reasoning' was provided without its required following item.``
  (openai/codex#1235, #13569) when nothing of its turn follows it (the exact trigger is
  inferred);
* tools: ``Invalid 'tools[N].name': string too long. …`` (the Chat form
  ``tools[N].function.name`` is in ida-pro-mcp#129); ``Invalid schema for function 'X':
  '<pattern>' is not a 'regex'.`` (param ``tools[N].parameters``, code
  ``invalid_function_parameters``; Alishahryar1/free-claude-code#1730, RCP#142): the
  validator compiles patterns with Python's ``re`` (bman654/clodex#195), so ``\\p{…}``
  fails; look-around is refused too, UNVERIFIED (Python accepts it; RCP and CPA drop it);
  with ``strict`` omitted or true every property must be ``required`` (``In context=(),
  'required' is required to be supplied and to be an array including every key in
  properties. Missing 'p'.``), UNVERIFIED wording (openai/codex#538; LL says strict is on
  when omitted).

Pure: :func:`input_refusal` returns the refusal or None.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

MAX_ID = 64
ID_PREFIXES = {
    "message": "msg",
    "reasoning": "rs",
    "function_call": "fc",
    "custom_tool_call": "ctc",
    "custom_tool_call_output": "ctco",
}
CALLS = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}
OUTPUTS = {output: call for call, output in CALLS.items()}
_LOOKAROUND = re.compile(r"\(\?<?[=!]")


@attrs.frozen
class Refusal:
    status: int
    body: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.body["error"]["message"])


def _refusal(message: str, param: str | None, code: str | None, status: int = 400) -> Refusal:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    return Refusal(status, {"error": error})


def _too_long(where: str, value: str) -> Refusal:
    message = (
        f"Invalid '{where}': string too long. Expected a string with maximum length "
        f"{MAX_ID}, but got a string with length {len(value)} instead."
    )
    return _refusal(message, where, "string_above_max_length")


def input_refusal(
    request: Mapping[str, Any], *, issued_by_account: Callable[[str], bool]
) -> Refusal | None:
    """The refusal of this body's ``tools`` or ``input``, or None.

    ``issued_by_account(encrypted_content)`` says whether the serving account issued it.
    """
    tools = request.get("tools")
    if isinstance(tools, list):
        for index, tool in enumerate(tools):
            refusal = tool_refusal(index, tool)
            if refusal is not None:
                return refusal
    items = request.get("input")
    if not isinstance(items, list):
        return None
    items = [item if isinstance(item, dict) else {} for item in items]
    for index, item in enumerate(items):
        refusal = _item_refusal(index, item, items, issued_by_account)
        if refusal is not None:
            return refusal
    return _pairing_refusal(items)


def _item_refusal(
    index: int,
    item: dict[str, Any],
    items: list[dict[str, Any]],
    issued_by_account: Callable[[str], bool],
) -> Refusal | None:
    kind = item.get("type", "message")
    item_id = item.get("id")
    if isinstance(item_id, str):
        prefix = ID_PREFIXES.get(str(kind))
        if prefix and not item_id.startswith(prefix):
            message = (
                f"Invalid 'input[{index}].id': '{item_id}'. "
                f"Expected an ID that begins with '{prefix}'."
            )
            return _refusal(message, f"input[{index}].id", "invalid_id_prefix")
        if len(item_id) > MAX_ID:
            return _too_long(f"input[{index}].id", item_id)
    call_id = item.get("call_id")
    if isinstance(call_id, str) and len(call_id) > MAX_ID:
        return _too_long(f"input[{index}].call_id", call_id)
    if kind != "reasoning":
        return None
    encrypted = item.get("encrypted_content")
    label = item_id if isinstance(item_id, str) else None
    if isinstance(encrypted, str) and encrypted:
        if not issued_by_account(encrypted):
            what = f"for item {label}" if label else _abbreviated(encrypted)
            message = (
                f"The encrypted content {what} could not be verified. "
                "Reason: Encrypted content could not be decrypted or parsed."
            )
            return _refusal(message, None, "invalid_encrypted_content")
    elif label:
        message = (
            f"Item with id '{label}' not found. Items are not persisted when `store` is set "
            "to false. Try again with `store` set to true, or remove this item from your input."
        )
        return _refusal(message, "input", None, status=404)
    following = items[index + 1] if index + 1 < len(items) else None
    if following is None or not _of_model_turn(following):
        name = label or "reasoning"
        message = (
            f"Item '{name}' of type 'reasoning' was provided without its required following item."
        )
        return _refusal(message, "input", None)
    return None


def _of_model_turn(item: dict[str, Any]) -> bool:
    """Whether an item can belong to the model's turn (not the client's next input)."""
    kind = str(item.get("type", "message"))
    if kind == "message":
        return item.get("role") == "assistant"
    return not kind.endswith("_output")


def _abbreviated(value: str) -> str:
    """How the backend shows a content it names without an item id (``gAAA...DQ==``)."""
    return value if len(value) <= 8 else f"{value[:4]}...{value[-4:]}"


def _pairing_refusal(items: list[dict[str, Any]]) -> Refusal | None:
    """Outputs need an earlier call; calls need an output unless they end the input."""
    called: dict[str, str] = {}  # call_id -> call type
    answered: set[str] = set()
    for item in items:
        kind = item.get("type")
        call_id = str(item.get("call_id") or "")
        if kind in CALLS:
            called[call_id] = str(kind)
        elif kind in OUTPUTS:
            if called.get(call_id) != OUTPUTS[str(kind)]:
                what = (
                    "function call output"
                    if kind == "function_call_output"
                    else ("custom tool call output")
                )
                message = f"No tool call found for {what} with call_id {call_id}."
                return _refusal(message, "input", None)
            answered.add(call_id)
    trailing = len(items)
    while trailing and items[trailing - 1].get("type") in CALLS:
        trailing -= 1
    for item in items[:trailing]:
        kind = item.get("type")
        call_id = str(item.get("call_id") or "")
        if kind in CALLS and call_id not in answered:
            what = "function call" if kind == "function_call" else "custom tool call"
            return _refusal(f"No tool output found for {what} {call_id}.", "input", None)
    return None


# -- tools --------------------------------------------------------------------------------


def tool_refusal(index: int, tool: Any) -> Refusal | None:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        return None
    name = str(tool.get("name") or "")
    if len(name) > MAX_ID:
        return _too_long(f"tools[{index}].name", name)
    parameters = tool.get("parameters")
    if not isinstance(parameters, dict):
        return None
    where = f"tools[{index}].parameters"
    for pattern in _patterns(parameters):
        if not _regex_supported(pattern):
            message = f"Invalid schema for function '{name}': {pattern!r} is not a 'regex'."
            return _refusal(message, where, "invalid_function_parameters")
    if tool.get("strict") is not False:
        missing = _strict_missing(parameters, ())
        if missing is not None:
            context, prop = missing
            message = (
                f"Invalid schema for function '{name}': In context={context!r}, 'required' is "
                "required to be supplied and to be an array including every key in "
                f"properties. Missing {prop!r}."
            )
            return _refusal(message, where, "invalid_function_parameters")
    return None


def _regex_supported(pattern: str) -> bool:
    if _LOOKAROUND.search(pattern):
        return False
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _patterns(schema: Any) -> list[str]:
    """Every ``pattern`` keyword of a schema (property names called "pattern" excluded)."""
    found: list[str] = []
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                found.append(value)
            elif key in ("properties", "patternProperties", "$defs", "definitions") and (
                isinstance(value, dict)
            ):
                for sub in value.values():
                    found += _patterns(sub)
            else:
                found += _patterns(value)
    elif isinstance(schema, list):
        for item in schema:
            found += _patterns(item)
    return found


def _strict_missing(schema: Any, context: tuple[str, ...]) -> tuple[tuple[str, ...], str] | None:
    """The first object property strict mode would find missing from ``required``."""
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties")
    if isinstance(properties, dict):
        required = schema.get("required")
        listed = set(required) if isinstance(required, list) else set()
        for prop in properties:
            if prop not in listed:
                return context, prop
        for prop, sub in properties.items():
            found = _strict_missing(sub, (*context, "properties", prop))
            if found is not None:
                return found
    items = schema.get("items")
    if isinstance(items, dict):
        return _strict_missing(items, (*context, "items"))
    return None
