"""Simulated ChatGPT Codex backend (protocols.md §1, real-clients.md §4).

Serves ``POST …/responses`` (SSE), ``POST …/responses/compact``, ``GET …/models`` under any
prefix, and ``GET …/wham/usage`` (or ``…/api/codex/usage``). Every answer to an
authenticated request carries the ``x-codex-*`` rate-limit headers, extra limit families
included (testing/codex_limits.py); a model whose family is spent gets the 429 of its
family while the account's other models are served.

Auth: an unknown or expired Bearer token gets 401 (Codex then refreshes). A missing or
wrong ``ChatGPT-Account-ID`` gets **403** ``account_mismatch``: the token itself is fine,
so refreshing would not help, and a proxy that forgets to rewrite the header is caught.
"""

from __future__ import annotations

import logging
from functools import lru_cache, partial
from typing import Any

import attrs

from trio_pool.server.connection import Exchange
from trio_pool.testing import codex_input_rules, codex_limits, codex_rules, codex_script, wire
from trio_pool.testing.accounts import SimAccount, SimWindow
from trio_pool.testing.faults import (
    FaultKind,
    SimConfig,
    full_text,
    input_tokens,
    output_tokens,
    text_pieces,
)
from trio_pool.testing.identity import cloudflare_challenge, codex_identity_refusal, refuse
from trio_pool.testing.state import SimState
from trio_pool.testing.turns import Turn

log = logging.getLogger(__name__)


def request_summary(request: dict[str, Any]) -> str:
    """A Responses request as ``key=value`` fields: its top-level keys, its input items'
    types in order, the reasoning ids, call ids and outputs (errors counted) it replays."""
    items = [i for i in request.get("input") or [] if isinstance(i, dict)]

    def ids(kind: str, key: str) -> str:
        return ",".join(str(i.get(key)) for i in items if i.get("type") == kind) or "-"

    outputs = [i for i in items if i.get("type") == "function_call_output"]
    errors = sum("[tool execution error]" in str(i.get("output")) for i in outputs)
    return (
        f"cache_key={request.get('prompt_cache_key') or '-'} "
        f"keys={','.join(sorted(request))} "
        f"items={','.join(str(i.get('type')) for i in items) or '-'} "
        f"reasoning={ids('reasoning', 'id')} calls={ids('function_call', 'call_id')} "
        f"outputs={ids('function_call_output', 'call_id')} error_outputs={errors}"
    )


DEFAULT_MODEL = "gpt-5"
MSG_ID = "msg_sim_0001"
EXPIRED = {
    "message": "Provided authentication token is expired. Please try signing in again.",
    "type": "invalid_request_error",
    "code": "token_expired",
    "param": None,
}
UNKNOWN_TOKEN = {
    "message": "Could not parse your authentication token. Please try signing in again.",
    "type": "invalid_request_error",
    "code": "invalid_token",
    "param": None,
}


def _detail(detail: Any) -> dict[str, Any]:
    """The backend's FastAPI-style refusals (validation, plan, workspace)."""
    return {"detail": detail}


def _error(message: str, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "code": code, "param": None}}


def usage_limit_body(account: SimAccount, window: SimWindow | None, now: float) -> dict[str, Any]:
    resets_at = window.reset_at(now) if window else now + 3600
    return {
        "error": {
            "type": "usage_limit_reached",
            "message": "The usage limit has been reached",
            "plan_type": account.plan,
            "resets_at": int(resets_at),
            "resets_in_seconds": max(0, int(resets_at - now)),
        }
    }


@attrs.frozen
class _Template:
    """The parts of a Codex stream that depend only on the config, encoded once."""

    deltas: tuple[bytes, ...]
    deltas_blob: bytes
    item_added: tuple[bytes, ...]  # output_item.added, content_part.added
    item_done: tuple[bytes, ...]  # output_text.done, content_part.done, output_item.done
    item: dict[str, Any]
    next_seq: int


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return wire.sse(kind, wire.dumps({"type": kind, **payload}))


@lru_cache(maxsize=64)
def _template(config: SimConfig) -> _Template:
    text = full_text(config)
    part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
    pending = {"id": MSG_ID, "type": "message", "role": "assistant", "status": "in_progress"}
    item = {**pending, "status": "completed", "content": [{**part, "text": text}]}
    at = {"item_id": MSG_ID, "output_index": 0, "content_index": 0}
    added = (
        _event(
            "response.output_item.added",
            {"sequence_number": 2, "output_index": 0, "item": {**pending, "content": []}},
        ),
        _event("response.content_part.added", {"sequence_number": 3, **at, "part": part}),
    )
    deltas = tuple(
        _event(
            "response.output_text.delta",
            {"sequence_number": 4 + i, **at, "delta": piece, "logprobs": []},
        )
        for i, piece in enumerate(text_pieces(config))
    )
    seq = 4 + len(deltas)
    done = (
        _event(
            "response.output_text.done",
            {"sequence_number": seq, **at, "text": text, "logprobs": []},
        ),
        _event(
            "response.content_part.done",
            {"sequence_number": seq + 1, **at, "part": {**part, "text": text}},
        ),
        _event(
            "response.output_item.done",
            {"sequence_number": seq + 2, "output_index": 0, "item": item},
        ),
    )
    return _Template(deltas, b"".join(deltas), added, done, item, seq + 3)


def _response(resp_id: str, model: str, created: int, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "parallel_tool_calls": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
        **extra,
    }


async def _stream_reply(
    state: SimState, ex: Exchange, account: SimAccount, request: dict[str, Any], body_size: int
) -> None:
    now = state.now()
    config = state.config_for(account)
    tpl = _template(config)
    asked = str(request.get("model") or DEFAULT_MODEL)
    model = config.model or asked
    resp_id = state.next_request_id("resp_sim")
    n_in, n_out = input_tokens(body_size), output_tokens(config)
    codex_limits.charge(account, account.units_for(n_in, n_out), now, asked)
    account.generations += 1
    usage = {
        "input_tokens": n_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": n_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": n_in + n_out,
    }
    first = _response(resp_id, model, int(now), "in_progress")
    head = [
        _event("response.created", {"sequence_number": 0, "response": first}),
        _event("response.in_progress", {"sequence_number": 1, "response": first}),
        *tpl.item_added,
    ]
    final = _response(resp_id, model, int(now), "completed", output=[tpl.item], usage=usage)
    tail = [
        *tpl.item_done,
        _event("response.completed", {"sequence_number": tpl.next_seq, "response": final}),
    ]
    error = {"code": "server_error", "message": "The simulator failed this stream on purpose."}
    failed = _response(resp_id, model, int(now), "failed", error=error)
    headers = [
        *wire.SSE_HEADERS,
        ("x-request-id", resp_id),
        ("openai-model", model),
        *codex_limits.rate_limit_headers(account, now, asked),
    ]
    await wire.send_stream(
        ex,
        headers,
        config,
        head=head,
        deltas=tpl.deltas,
        deltas_blob=tpl.deltas_blob,
        tail=tail,
        error_event=_event(
            "response.failed", {"sequence_number": tpl.next_seq, "response": failed}
        ),
    )


async def _fault(ex: Exchange, account: SimAccount, kind: FaultKind, now: float) -> None:
    headers = codex_limits.rate_limit_headers(account, now)
    if kind == "quota":
        body = usage_limit_body(account, account.binding_window(now), now)
        await wire.respond_json(ex, 429, body, headers)
    elif kind == "throttle":
        body = _error(
            "Rate limit reached for requests. Please try again in 1s.",
            "requests",
            "rate_limit_exceeded",
        )
        await wire.respond_json(ex, 429, body, [*headers, ("retry-after", "1")])
    elif kind == "overloaded":
        body = _error(
            "Our servers are currently overloaded. Please try again later.",
            "server_error",
            "server_is_overloaded",
        )
        await wire.respond_json(ex, 503, body, headers)
    elif kind == "server_error":
        body = _error("An error occurred while processing your request.", "server_error", None)
        await wire.respond_json(ex, 500, body, headers)
    elif kind == "cloudflare":
        await refuse(ex, cloudflare_challenge())
    elif kind == "deactivated_workspace":
        await wire.respond_json(ex, 402, _detail({"code": "deactivated_workspace"}))
    elif kind == "usage_not_included":
        body = {
            "error": {
                "type": "usage_not_included",
                "message": "To use Codex with your ChatGPT plan, upgrade to Plus.",
                "plan_type": account.plan,
            }
        }
        await wire.respond_json(ex, 429, body, headers)
    else:
        await wire.respond_json(ex, 401, {"error": EXPIRED})


async def handle(state: SimState, ex: Exchange) -> None:
    """Answer one request under the Codex backend paths."""
    head = ex.head
    path = head.path.rstrip("/")
    try:
        body = await wire.read_body(ex)
        request = wire.parse_json(body) if head.method == "POST" else {}
    except wire.BadBody as exc:
        await wire.respond_json(ex, 400, _error(str(exc), "invalid_request_error", "invalid_body"))
        return
    if path.endswith("/responses") and head.method == "GET" and head.wants_upgrade("websocket"):
        # No WebSocket yet: Codex falls back to the HTTP POST on a refused upgrade.
        await wire.respond_json(
            ex,
            426,
            _error("WebSocket is not supported here.", "invalid_request_error", "upgrade_required"),
        )
        return
    usage_poll = path.endswith(("/wham/usage", "/api/codex/usage")) and head.method == "GET"
    if usage_poll and await refuse(ex, codex_identity_refusal(head)):
        return
    now = state.now()
    account = state.by_access("codex", wire.bearer(head))
    if account is None:
        state.unknown_token_requests += 1
        await wire.respond_json(ex, 401, {"error": UNKNOWN_TOKEN})
        return
    account.record(head.path, head.headers, body)
    if account.expired(now):
        await wire.respond_json(ex, 401, {"error": EXPIRED})
        return
    if head.get("chatgpt-account-id") != account.account_id:
        message = "The ChatGPT-Account-ID header does not match the account of this token."
        await wire.respond_json(
            ex, 403, _error(message, "invalid_request_error", "account_mismatch")
        )
        return
    if usage_poll:
        await wire.respond_json(ex, 200, codex_limits.usage_poll_body(account, now))
        return
    if path.endswith("/models") and head.method == "GET":
        headers = [("etag", '"sim-models-1"'), ("x-models-etag", '"sim-models-1"')]
        await wire.respond_json(ex, 200, {"models": []}, headers)
        return
    compact = path.endswith("/responses/compact")
    if head.method != "POST" or not (compact or path.endswith("/responses")):
        await wire.respond_json(
            ex, 404, _error(f"Unknown path {head.path}", "invalid_request_error", "not_found")
        )
        return
    if not compact:
        # What the request carried (e2e/real_claude_on_codex.py checks translated turns).
        log.debug("sim.codex.request account=%s %s", account.key, request_summary(request))
        lite = codex_rules.is_lite(head.get(codex_rules.LITE_HEADER), request)
        detail = codex_rules.body_refusal(request, lite=lite) or codex_rules.plan_refusal(
            request.get("model"), account.plan
        )
        if detail is not None:
            await wire.respond_json(ex, 400, _detail(detail))
            return
        issued = partial(state.scripts.issued_by, account.key)
        refusal = codex_input_rules.input_refusal(request, issued_by_account=issued)
        if refusal is not None:
            await wire.respond_json(ex, refusal.status, refusal.body)
            return
    kind = account.take_forced()
    if kind is not None:
        await _fault(ex, account, kind, now)
        return
    model = str(request.get("model") or DEFAULT_MODEL)
    # The limit this model counts against: its family's when it has one (codex_limits).
    blocking = codex_limits.blocking(account, now, model)
    if blocking is not None:
        headers = codex_limits.rate_limit_headers(account, now, model)
        await wire.respond_json(ex, 429, usage_limit_body(account, blocking, now), headers)
        return
    if compact:
        config = state.config_for(account)
        units = account.units_for(input_tokens(len(body)), output_tokens(config))
        codex_limits.charge(account, units, now, model)
        summary = {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": full_text(config)}],
        }
        headers = codex_limits.rate_limit_headers(account, now, model)
        await wire.respond_json(ex, 200, {"output": [summary]}, headers)
        return
    session = head.get("session-id") or head.get("session_id")
    turn = state.scripts.take(
        "codex",
        account=account.key,
        conversation=codex_script.conversation_of(request, session),
        body=body,
    )
    if turn is not None:
        await _scripted_reply(state, ex, account, request, len(body), turn)
        return
    await _stream_reply(state, ex, account, request, len(body))


async def _scripted_reply(
    state: SimState,
    ex: Exchange,
    account: SimAccount,
    request: dict[str, Any],
    body_size: int,
    turn: Turn,
) -> None:
    """A scripted turn (testing/codex_script.py) in place of the plain text reply."""
    now = state.now()
    asked = str(request.get("model") or DEFAULT_MODEL)
    model = state.config_for(account).model or asked
    if turn.http_error is None:
        codex_limits.charge(account, account.units_for(input_tokens(body_size), 1), now, asked)
        account.generations += 1
    await codex_script.reply(
        ex,
        turn,
        account=account,
        headers=codex_limits.rate_limit_headers(account, now, asked),
        resp_id=state.next_request_id("resp_sim"),
        model=model,
        now=now,
        body_size=body_size,
        issue=partial(state.scripts.issue_encrypted, account.key),
    )
