"""Simulated Anthropic Messages API for Claude.ai OAuth tokens (protocols.md §2, real-clients.md §5).

Serves ``POST /v1/messages`` (SSE or JSON, ``?beta=true`` ignored),
``POST /v1/messages/count_tokens`` and ``GET /api/oauth/usage``. OAuth tokens need
``Authorization: Bearer`` *and* ``oauth-2025-04-20`` in ``anthropic-beta``, as on the real API.
Every answer to an authenticated request carries ``anthropic-ratelimit-unified-*``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import attrs

from trio_pool.server.connection import Exchange
from trio_pool.testing import claude_message_rules, claude_rules, claude_script, wire
from trio_pool.testing.accounts import SimAccount
from trio_pool.testing.faults import (
    FaultKind,
    SimConfig,
    full_text,
    input_tokens,
    output_tokens,
    text_pieces,
)
from trio_pool.testing.identity import claude_usage_refusal, cloudflare_challenge, refuse
from trio_pool.testing.state import SimState
from trio_pool.testing.turns import Turn

log = logging.getLogger(__name__)

OAUTH_BETA = "oauth-2025-04-20"
DEFAULT_MODEL = "claude-opus-5-5"
EXPIRED_MESSAGE = (
    "OAuth token has expired. Please obtain a new token or refresh your existing token."
)
REVOKED_MESSAGE = "OAuth token has been revoked. Please obtain a new token."
ORG_DISABLED_MESSAGE = "This organization has been disabled."
QUOTA_MESSAGE = "This request would exceed your account's rate limit. Please try again later."
# Window index -> header label and representative-claim name.
WINDOW_LABELS = (("5h", "five_hour"), ("7d", "seven_day"))
# Model windows (SimWindow.model) by family: their claim and usage-poll key. The headers
# carry no utilization of their own for these (none seen); the poll does.
MODEL_CLAIMS = {"opus": "seven_day_opus", "sonnet": "seven_day_sonnet"}
WARNING_FRACTION = 0.8
UNIFIED_RESET = "anthropic-ratelimit-unified-reset"


def _error(type_: str, message: str, request_id: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}


def unified_headers(
    account: SimAccount, now: float, *, rejected: bool = False, model: str | None = None
) -> list[tuple[str, str]]:
    """``anthropic-ratelimit-unified-*`` (utilizations are 0-1 fractions, resets unix s).

    ``rejected`` is for the 429 itself; the success that fills a window says allowed_warning.
    A rejection by a model window (the weekly Opus limit) names it as the representative
    claim.
    """
    blocking = account.blocking_window(now, model) if rejected else None
    binding = blocking or account.binding_window(now)
    prefix = "anthropic-ratelimit-unified-"
    if rejected:
        status = "rejected"
    elif binding is not None and binding.fraction >= WARNING_FRACTION:
        status = "allowed_warning"
    else:
        status = "allowed"
    headers = [(prefix + "status", status)]
    claim = (
        MODEL_CLAIMS.get(binding.model, "five_hour") if binding and binding.model else "five_hour"
    )
    main = [w for w in account.windows if w.model is None]
    for (label, name), window in zip(WINDOW_LABELS, main, strict=False):
        if window is binding:
            claim = name
        w_status = (
            "rejected"
            if rejected and window.full
            else ("allowed_warning" if window.fraction >= WARNING_FRACTION else "allowed")
        )
        headers += [
            (f"{prefix}{label}-utilization", f"{round(window.fraction, 4):g}"),
            (f"{prefix}{label}-reset", str(int(window.reset_at(now)))),
            (f"{prefix}{label}-status", w_status),
        ]
    reset = binding.reset_at(now) if binding is not None else now + 5 * 3600
    headers += [
        (prefix + "reset", str(int(reset))),
        (prefix + "representative-claim", claim),
        (prefix + "fallback-percentage", "0.5"),
        (prefix + "overage-status", "rejected"),
        (prefix + "overage-disabled-reason", "org_level_disabled"),
    ]
    return headers


def usage_poll_body(account: SimAccount, now: float) -> dict[str, Any]:
    """``/api/oauth/usage``: utilization in percent (0-100), ISO reset times."""
    account.roll(now)
    body: dict[str, Any] = {"five_hour": None, "seven_day": None}
    body.update(seven_day_oauth_apps=None, seven_day_opus=None, seven_day_sonnet=None)
    main = [w for w in account.windows if w.model is None]
    for (_, name), window in zip(WINDOW_LABELS, main, strict=False):
        resets = datetime.fromtimestamp(window.reset_at(now), tz=UTC).isoformat()
        body[name] = {"utilization": round(window.fraction * 100, 1), "resets_at": resets}
    limits = []
    for window in account.windows:
        if window.model is None:
            continue
        resets = datetime.fromtimestamp(window.reset_at(now), tz=UTC).isoformat()
        used = round(window.fraction * 100, 1)
        if window.model in MODEL_CLAIMS:
            body[MODEL_CLAIMS[window.model]] = {"utilization": used, "resets_at": resets}
        # The newer list (real-services.md §2: one real sample) repeats them as scoped rows.
        display = {"display_name": window.model.capitalize()}
        limits.append(
            {"kind": "weekly_scoped", "percent": used, "resets_at": resets,
             "scope": {"model": display}, "is_active": True}
        )  # fmt: skip
    body["limits"] = limits
    body["extra_usage"] = {
        "is_enabled": False,
        "monthly_limit": None,
        "used_credits": None,
        "utilization": None,
    }
    return body


@attrs.frozen
class _Template:
    block_start: tuple[bytes, ...]  # content_block_start, ping
    deltas: tuple[bytes, ...]
    deltas_blob: bytes
    tail: tuple[bytes, ...]  # content_block_stop, message_delta, message_stop


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return wire.sse(kind, wire.dumps({"type": kind, **payload}))


@lru_cache(maxsize=64)
def _template(config: SimConfig) -> _Template:
    deltas = tuple(
        _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}})
        for piece in text_pieces(config)
    )
    stop = {"stop_reason": "end_turn", "stop_sequence": None}
    return _Template(
        block_start=(
            _event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            _event("ping", {}),
        ),
        deltas=deltas,
        deltas_blob=b"".join(deltas),
        tail=(
            _event("content_block_stop", {"index": 0}),
            _event(
                "message_delta", {"delta": stop, "usage": {"output_tokens": output_tokens(config)}}
            ),
            _event("message_stop", {}),
        ),
    )


def _message(
    msg_id: str, model: str, n_in: int, n_out: int, content: list[Any], stop: str | None
) -> dict[str, Any]:
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": model,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {
            "input_tokens": n_in,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": n_out,
        },
    }


async def _reply(
    state: SimState,
    ex: Exchange,
    account: SimAccount,
    request: dict[str, Any],
    body_size: int,
    request_id: str,
) -> None:
    now = state.now()
    config = state.config_for(account)
    model = config.model or str(request.get("model") or DEFAULT_MODEL)
    n_in, n_out = input_tokens(body_size), output_tokens(config)
    account.consume(account.units_for(n_in, n_out), now, model)
    account.generations += 1
    msg_id = state.next_request_id("msg_sim")
    headers = [("request-id", request_id), *unified_headers(account, now)]
    if not request.get("stream"):
        content = [{"type": "text", "text": full_text(config)}]
        await wire.respond_json(
            ex, 200, _message(msg_id, model, n_in, n_out, content, "end_turn"), headers
        )
        return
    tpl = _template(config)
    start = _event("message_start", {"message": _message(msg_id, model, n_in, 1, [], None)})
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    await wire.send_stream(
        ex,
        [*wire.SSE_HEADERS, *headers],
        config,
        head=[start, *tpl.block_start],
        deltas=tpl.deltas,
        deltas_blob=tpl.deltas_blob,
        tail=tpl.tail,
        error_event=wire.sse("error", wire.dumps(overloaded)),
    )


async def _fault(
    ex: Exchange, account: SimAccount, kind: FaultKind, now: float, request_id: str
) -> None:
    rid = [("request-id", request_id)]
    if kind == "quota":
        headers = [*rid, *unified_headers(account, now, rejected=True), ("retry-after", "3600")]
        await wire.respond_json(
            ex, 429, _error("rate_limit_error", QUOTA_MESSAGE, request_id), headers
        )
    elif kind == "throttle":
        # Request-scoped: no unified headers, so not the account's quota.
        await wire.respond_json(
            ex,
            429,
            _error("rate_limit_error", "Rate limited", request_id),
            [*rid, ("x-should-retry", "true")],
        )
    elif kind == "overloaded":
        await wire.respond_json(
            ex,
            529,
            _error("overloaded_error", "Overloaded", request_id),
            [*rid, ("x-should-retry", "true")],
        )
    elif kind == "server_error":
        await wire.respond_json(
            ex, 500, _error("api_error", "Internal server error", request_id), rid
        )
    elif kind == "cloudflare":
        await refuse(ex, cloudflare_challenge())
    elif kind in ("revoked", "org_disabled"):
        message = REVOKED_MESSAGE if kind == "revoked" else ORG_DISABLED_MESSAGE
        await wire.respond_json(ex, 403, _error("permission_error", message, request_id), rid)
    else:
        await wire.respond_json(
            ex, 401, _error("authentication_error", EXPIRED_MESSAGE, request_id), rid
        )


async def _authenticate(
    state: SimState, ex: Exchange, request_id: str, *, need_beta: bool
) -> SimAccount | None:
    """The account of the request, or None after answering 401 like the real API."""
    head = ex.head
    token = wire.bearer(head)
    if token is None:
        message = "invalid x-api-key" if head.get("x-api-key") else "x-api-key header is required"
        state.unknown_token_requests += 1
        await wire.respond_json(ex, 401, _error("authentication_error", message, request_id))
        return None
    account = state.by_access("claude", token)
    if account is None:
        state.unknown_token_requests += 1
        await wire.respond_json(
            ex, 401, _error("authentication_error", "Invalid bearer token", request_id)
        )
        return None
    betas = {b.strip() for value in head.get_all("anthropic-beta") for b in value.split(",")}
    if need_beta and OAUTH_BETA not in betas:
        message = "OAuth authentication is currently not supported."
        await wire.respond_json(ex, 401, _error("authentication_error", message, request_id))
        return None
    if account.expired(state.now()):
        await wire.respond_json(
            ex, 401, _error("authentication_error", EXPIRED_MESSAGE, request_id)
        )
        return None
    return account


async def handle(state: SimState, ex: Exchange) -> None:
    """Answer one request under ``/v1/messages`` or ``/api/oauth/usage``."""
    head = ex.head
    request_id = state.next_request_id("req_sim")
    try:
        body = await wire.read_body(ex)
        request = wire.parse_json(body) if head.method == "POST" else {}
    except wire.BadBody as exc:
        await wire.respond_json(ex, 400, _error("invalid_request_error", str(exc), request_id))
        return
    usage = head.path == "/api/oauth/usage"
    if usage and await refuse(ex, claude_usage_refusal(head)):
        return
    account = await _authenticate(state, ex, request_id, need_beta=not usage)
    if account is None:
        return
    account.record(head.path, head.headers, body)
    now = state.now()
    if usage and head.method == "GET":
        await wire.respond_json(ex, 200, usage_poll_body(account, now))
        return
    if head.method != "POST" or head.path not in ("/v1/messages", "/v1/messages/count_tokens"):
        await wire.respond_json(
            ex,
            404,
            _error("not_found_error", "Not found", request_id),
            [("request-id", request_id)],
        )
        return
    if head.path.endswith("/count_tokens"):
        await wire.respond_json(
            ex, 200, {"input_tokens": input_tokens(len(body))}, unified_headers(account, now)
        )
        return
    if head.path == "/v1/messages":
        # What a client's prompt caching asked for (e2e/real_clis.py checks Claude Code's 1h).
        log.debug(
            "sim.claude.request model=%s billing=%s cache_ttls=%s",
            request.get("model"),
            "yes" if claude_rules.billing_text(request) else "no",
            ",".join(claude_rules.cache_ttls(request)) or "-",
        )
    refusal = None
    if not claude_rules.attestation_holds(body):
        refusal = claude_rules.CCH_MISMATCH_MESSAGE
    elif head.path == "/v1/messages" and (
        problem := claude_message_rules.messages_refusal(
            request, signature_valid=state.scripts.signature_valid
        )
    ):
        refusal = problem
    elif head.path == "/v1/messages" and claude_rules.third_party(request):
        # Not Claude Code's request: billed as extra usage, refused without any.
        if account.extra_usage:
            account.extra_usage_requests += 1
        else:
            refusal = claude_rules.THIRD_PARTY_MESSAGE
    if refusal is not None:
        error = _error("invalid_request_error", refusal, request_id)
        await wire.respond_json(ex, 400, error, [("request-id", request_id)])
        return
    kind = account.take_forced()
    if kind is not None:
        await _fault(ex, account, kind, now, request_id)
        return
    model = str(request.get("model") or DEFAULT_MODEL)
    window = account.blocking_window(now, model)
    if window is not None:
        headers = [
            ("request-id", request_id),
            *unified_headers(account, now, rejected=True, model=model),
        ]
        headers.append(("retry-after", str(int(window.reset_after_s(now)) + 1)))
        await wire.respond_json(
            ex, 429, _error("rate_limit_error", QUOTA_MESSAGE, request_id), headers
        )
        return
    session = claude_script.conversation_of(request, head.get("x-claude-code-session-id"))
    turn = state.scripts.take("claude", account=account.key, conversation=session, body=body)
    if turn is not None:
        await _scripted_reply(state, ex, account, request, len(body), request_id, turn)
        return
    await _reply(state, ex, account, request, len(body), request_id)


async def _scripted_reply(
    state: SimState,
    ex: Exchange,
    account: SimAccount,
    request: dict[str, Any],
    body_size: int,
    request_id: str,
    turn: Turn,
) -> None:
    """A scripted turn (testing/claude_script.py) in place of the plain text reply."""
    now = state.now()
    model = state.config_for(account).model or str(request.get("model") or DEFAULT_MODEL)
    error = turn.http_error
    if error is not None:
        headers = [("request-id", request_id)]
        resets = error.resets_in_seconds
        if error.status == 429 and error.type == "rate_limit_error":
            # A scripted quota rejection: the unified reset is the scripted one.
            reset_at = str(int(now + resets)) if resets is not None else None
            headers += [
                (k, reset_at if reset_at and k == UNIFIED_RESET else v)
                for k, v in unified_headers(account, now, rejected=True, model=model)
            ]
        if resets is not None:
            headers.append(("retry-after", str(resets)))
        body = _error(error.type, error.message, request_id)
        await wire.respond_json(ex, error.status, body, headers)
        return
    account.consume(account.units_for(input_tokens(body_size), 1), now, model)
    account.generations += 1
    await claude_script.reply(
        ex,
        turn,
        request=request,
        headers=[("request-id", request_id), *unified_headers(account, now)],
        msg_id=state.next_request_id("msg_sim"),
        model=model,
        body_size=body_size,
        sign=state.scripts.sign_thinking,
    )
