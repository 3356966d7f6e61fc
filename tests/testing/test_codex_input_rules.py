"""The simulated Codex backend refuses the input items and tools the real one refuses, with
its texts and statuses (testing/codex_input_rules.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from tests.http_client import HttpClient
from tests.testing.sim_helpers import Sim, call, codex_headers, json_body
from tests.testing.test_websocket import auth, connect, turn, ws_url

BASE: dict[str, Any] = {"model": "gpt-5", "instructions": "", "store": False, "stream": True}
ENCRYPTED = "gAAAAB" + "x" * 40


def user(text: str = "hi") -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def call_item(call_id: str = "call_1", name: str = "Bash") -> dict[str, Any]:
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": "{}"}


def output(call_id: str = "call_1") -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": "ok"}


def assistant(text: str = "ok", **extra: Any) -> dict[str, Any]:
    parts = [{"type": "output_text", "text": text}]
    return {"type": "message", "role": "assistant", "content": parts, **extra}


def tool(name: str = "Bash", parameters: Any = None, **extra: Any) -> dict[str, Any]:
    schema = parameters or {"type": "object", "properties": {}}
    return {"type": "function", "name": name, "parameters": schema, "strict": False, **extra}


def url(sim: Sim) -> str:
    return f"{sim.base}/backend-api/codex/responses"


ARTIFACT = "^(?!__.*__$)[^\\p{Cc}\\p{Cf}\\p{Zl}\\p{Zp}]{1,200}$"
LONG = "x" * 70

REFUSED: list[tuple[str, dict[str, Any], int, str, str | None]] = [
    (
        "orphan output",
        {"input": [user(), output("call_9")]},
        400,
        "No tool call found for function call output with call_id call_9.",
        None,
    ),
    (
        "call without output before more input",
        {"input": [user(), call_item("call_8"), user("next")]},
        400,
        "No tool output found for function call call_8.",
        None,
    ),
    (
        "custom call without output",
        {
            "input": [
                user(),
                {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": ""},
                user("next"),
            ]
        },
        400,
        "No tool output found for custom tool call c1.",
        None,
    ),
    (
        "message id prefix",
        {"input": [user(), assistant(id="019f629b-43ee")]},
        400,
        "Invalid 'input[1].id': '019f629b-43ee'. Expected an ID that begins with 'msg'.",
        "invalid_id_prefix",
    ),
    (
        "reasoning id prefix",
        {
            "input": [
                user(),
                {"type": "reasoning", "id": "x_1", "summary": [], "encrypted_content": "E"},
                assistant(),
            ]
        },
        400,
        "Invalid 'input[1].id': 'x_1'. Expected an ID that begins with 'rs'.",
        "invalid_id_prefix",
    ),
    (
        "long call id",
        {"input": [user(), call_item(LONG), output(LONG)]},
        400,
        "Invalid 'input[1].call_id': string too long. Expected a string with maximum length "
        "64, but got a string with length 70 instead.",
        "string_above_max_length",
    ),
    (
        "foreign encrypted reasoning",
        {
            "input": [
                user(),
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": ENCRYPTED},
                call_item(),
                output(),
            ]
        },
        400,
        "The encrypted content for item rs_1 could not be verified. Reason: Encrypted content "
        "could not be decrypted or parsed.",
        "invalid_encrypted_content",
    ),
    (
        "reasoning by id under store false",
        {"input": [user(), {"type": "reasoning", "id": "rs_2", "summary": []}, assistant()]},
        404,
        "Item with id 'rs_2' not found. Items are not persisted when `store` is set to false. "
        "Try again with `store` set to true, or remove this item from your input.",
        None,
    ),
    (
        "long tool name",
        {"input": [user()], "tools": [tool("mcp__" + LONG)]},
        400,
        "Invalid 'tools[0].name': string too long. Expected a string with maximum length 64, "
        "but got a string with length 75 instead.",
        "string_above_max_length",
    ),
    (
        "unicode property pattern",
        {
            "input": [user()],
            "tools": [
                tool(
                    "Artifact",
                    {
                        "type": "object",
                        "properties": {"path": {"type": "string", "pattern": ARTIFACT}},
                    },
                )
            ],
        },
        400,
        f"Invalid schema for function 'Artifact': {ARTIFACT!r} is not a 'regex'.",
        "invalid_function_parameters",
    ),
    (
        "strict omitted",
        {
            "input": [user()],
            "tools": [
                {
                    "type": "function",
                    "name": "Bash",
                    "parameters": {
                        "type": "object",
                        "properties": {"command": {"type": "string"}, "timeout": {}},
                        "required": ["command"],
                    },
                }
            ],
        },
        400,
        "Invalid schema for function 'Bash': In context=(), 'required' is required to be "
        "supplied and to be an array including every key in properties. Missing 'timeout'.",
        "invalid_function_parameters",
    ),
]


@pytest.mark.parametrize(
    ("change", "status", "message", "code"),
    [case[1:] for case in REFUSED],
    ids=[case[0] for case in REFUSED],
)
async def test_codex_refuses_input_the_real_backend_refuses(
    sim: Sim,
    http: HttpClient,
    change: dict[str, Any],
    status: int,
    message: str,
    code: str | None,
) -> None:
    """The real status and {"error":{message,type,code}} for each input or tool rule."""
    with trio.fail_after(10):
        refused = await call(
            http, "POST", url(sim), codex_headers(sim.account("codex")), {**BASE, **change}
        )
    assert refused.status == status
    error = json_body(refused)["error"]
    assert (error["message"], error["type"], error["code"]) == (
        message,
        "invalid_request_error",
        code,
    )


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("trailing calls wait for their outputs", {"input": [user(), call_item("a"), call_item("b")]}),
    ("paired call and output", {"input": [user(), call_item(), output(), assistant()]}),
    ("ids with their prefixes", {"input": [user(), assistant(id="msg_1")]}),
    ("plain pattern, strict false", {"input": [user()], "tools": [tool("t", {"pattern": "^a$"})]}),
    (
        "strict with every property required",
        {
            "input": [user()],
            "tools": [
                {
                    "type": "function",
                    "name": "t",
                    "strict": True,
                    "parameters": {
                        "type": "object",
                        "properties": {"a": {"type": "string"}},
                        "required": ["a"],
                        "additionalProperties": False,
                    },
                }
            ],
        },
    ),
]


@pytest.mark.parametrize(
    "change", [case[1] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED]
)
async def test_codex_serves_well_formed_input(
    sim: Sim, http: HttpClient, change: dict[str, Any]
) -> None:
    """What the real backend takes is served (the rules are not stricter than it)."""
    with trio.fail_after(10):
        served = await call(
            http, "POST", url(sim), codex_headers(sim.account("codex")), {**BASE, **change}
        )
    assert served.status == 200, served.content


async def test_codex_websocket_refuses_an_orphan_output_in_an_error_frame(sim: Sim) -> None:
    """Over the WebSocket an input refusal is an error frame with the same status and text."""
    request = {"type": "response.create", **BASE, "input": [user(), output("call_7")]}
    with trio.fail_after(10):
        async with connect(ws_url(sim), auth(sim.account("codex"))) as ws:
            (error,) = await turn(ws, json.dumps(request))
    assert error["status"] == 400
    assert error["error"]["message"] == (
        "No tool call found for function call output with call_id call_7."
    )
