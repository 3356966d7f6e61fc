"""Simulated Gemini Code Assist (``/v1internal:*``, protocols.md §3, real-clients.md §6).

A body whose ``project`` is not the account's ``cloudaicompanionProject`` gets 403
PERMISSION_DENIED, so a proxy that forgets to rewrite ``project`` is caught. A full quota
window gets the real 429 RESOURCE_EXHAUSTED: RATE_LIMIT_EXCEEDED for short windows
(<= 5 min, retryable), QUOTA_EXHAUSTED for long ones (terminal for the CLI); a window of one
model (``SimWindow.model``) stops that model only, and retrieveUserQuota has one bucket per
model.

The Code Assist set-up is as strict as the real service's (real-services.md §3):

* individual accounts (free, AI Pro, AI Ultra tiers) are refused since 2026-06-18:
  loadCodeAssist has no currentTier, only ``ineligibleTiers`` with UNSUPPORTED_CLIENT, and
  every other call is denied;
* Standard/Enterprise tiers bill the user's own project: loadCodeAssist names it only when
  the request carries it, and calls without it are denied;
* an account not onboarded yet (``SimAccount.onboarded``) has no currentTier until
  onboardUser's long-running operation, polled by that same account, is done;
* ``SimAccount.validation_url`` makes every call answer 403 VALIDATION_REQUIRED.

Unverified details (the exact reasonMessage, what a refused account's other calls answer)
follow what the real CLI expects, and are marked where they are made up.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import attrs

from trio_pool.server.connection import Exchange
from trio_pool.testing import wire
from trio_pool.testing.accounts import SimAccount, SimWindow
from trio_pool.testing.faults import (
    FaultKind,
    SimConfig,
    full_text,
    input_tokens,
    output_tokens,
    text_pieces,
)
from trio_pool.testing.schema import minimal_instance
from trio_pool.testing.state import SimState

DEFAULT_MODEL = "gemini-2.5-pro"
# Individual Google accounts: no longer served by Code Assist (since 2026-06-18).
INDIVIDUAL_TIERS = frozenset({"free-tier", "g1-pro-tier", "g1-ultra-tier"})
# Made up: the capture (claude-remember#532) shows the code, not this exact text.
UNSUPPORTED_MESSAGE = (
    "Gemini Code Assist for individuals is no longer available in Gemini CLI. "
    "Use a Gemini Code Assist Standard or Enterprise licence."
)
HELP = "type.googleapis.com/google.rpc.Help"
MODELS = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-3-flash")
DOMAIN = "cloudcode-pa.googleapis.com"
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
SHORT_WINDOW_S = 300.0
UNAUTHENTICATED = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)
# Placeholders spliced per request into the pre-encoded chunks (cheaper than re-encoding).
_MODEL = b"@@SIM_MODEL@@"
_RID = b"@@SIM_RESPONSE_ID@@"
GENERATION = ("streamGenerateContent", "generateContent")


def _error(
    code: int, status: str, message: str, details: list[Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return {"error": error}


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def exhausted_body(
    window: SimWindow | None, model: str, now: float, *, reason: str | None = None
) -> dict[str, Any]:
    """The 429 RESOURCE_EXHAUSTED body with ErrorInfo and RetryInfo (protocols.md §3.6)."""
    after = math.ceil(window.reset_after_s(now)) if window else 3600
    if reason is None:
        reason = (
            "RATE_LIMIT_EXCEEDED"
            if window and window.length_s <= SHORT_WINDOW_S
            else "QUOTA_EXHAUSTED"
        )
    metadata = {
        "model": model,
        "quotaResetDelay": f"{after}s",
        "quotaResetTimeStamp": _iso(now + after),
    }
    details = [
        {"@type": ERROR_INFO, "reason": reason, "domain": DOMAIN, "metadata": metadata},
        {"@type": RETRY_INFO, "retryDelay": f"{after}s"},
    ]
    message = (
        f"You have exhausted your capacity on this model. Your quota will reset after {after}s."
    )
    return _error(429, "RESOURCE_EXHAUSTED", message, details)


def _tier(account: SimAccount) -> dict[str, Any]:
    tier_id = account.plan if account.plan.endswith("-tier") else f"{account.plan}-tier"
    return {
        "id": tier_id,
        "name": "Gemini Code Assist for individuals"
        if tier_id == "free-tier"
        else "Gemini Code Assist",
        "description": "Simulated tier",
        "userDefinedCloudaicompanionProject": tier_id not in INDIVIDUAL_TIERS,
    }


def _operation_name(account: SimAccount) -> str:
    return f"operations/sim-onboard-{account.name}"


def _operation(account: SimAccount, *, done: bool = True) -> dict[str, Any]:
    if not done:
        return {"name": _operation_name(account), "done": False}
    project = {"id": account.project, "name": account.project}
    return {
        "name": _operation_name(account),
        "done": True,
        "response": {"cloudaicompanionProject": project},
    }


def _denied(message: str, reason: str, domain: str = DOMAIN) -> dict[str, Any]:
    info = {"@type": ERROR_INFO, "reason": reason, "domain": domain}
    return _error(403, "PERMISSION_DENIED", message, [info])


def validation_body(account: SimAccount) -> dict[str, Any]:
    """403 VALIDATION_REQUIRED as googleQuotaErrors.ts reads it: ErrorInfo + a Help link."""
    body = _denied("Verify your account to continue.", "VALIDATION_REQUIRED")
    link = {"description": "Verify your account", "url": account.validation_url}
    body["error"]["details"].append({"@type": HELP, "links": [link]})
    return body


def load_code_assist(account: SimAccount, request: dict[str, Any]) -> dict[str, Any]:
    """loadCodeAssist as the real service answers it for this account (setup.ts reads it)."""
    tier = _tier(account)
    if account.plan in INDIVIDUAL_TIERS:
        ineligible = {
            "reasonCode": "UNSUPPORTED_CLIENT",
            "reasonMessage": UNSUPPORTED_MESSAGE,
            "tierId": tier["id"],
            "tierName": tier["name"],
        }
        return {"ineligibleTiers": [ineligible]}
    if account.validation_url:
        ineligible = {
            "reasonCode": "VALIDATION_REQUIRED",
            "reasonMessage": "Verify your account to continue.",
            "tierId": tier["id"],
            "validationUrl": account.validation_url,
        }
        return {"ineligibleTiers": [ineligible]}
    if not account.onboarded:
        return {"allowedTiers": [{**tier, "isDefault": True}]}
    answer: dict[str, Any] = {"currentTier": tier, "allowedTiers": [{**tier, "isDefault": True}]}
    # A user-defined project is named back only when the request carries it: with none,
    # the CLI raises ProjectIdRequiredError (setup.ts).
    if request.get("cloudaicompanionProject") == account.project:
        answer["cloudaicompanionProject"] = account.project
    return answer


def setup_refusal(
    account: SimAccount, method: str, request: dict[str, Any]
) -> tuple[int, dict[str, Any]] | None:
    """Why the real service would refuse this call of a set-up (or refused) account."""
    if account.plan in INDIVIDUAL_TIERS:
        return 403, _denied(UNSUPPORTED_MESSAGE, "UNSUPPORTED_CLIENT")
    if account.validation_url:
        return 403, validation_body(account)
    if method == "onboardUser":
        if request.get("cloudaicompanionProject") != account.project:
            message = "This tier requires a Google Cloud project (cloudaicompanionProject)."
            return 400, _error(400, "FAILED_PRECONDITION", message)
        return None
    if not account.onboarded:
        return 403, _denied("The user has not onboarded to Gemini Code Assist.", "NOT_ONBOARDED")
    if method in (*GENERATION, "retrieveUserQuota") and request.get("project") is None:
        return 403, _denied("A Google Cloud project is required.", "PROJECT_REQUIRED")
    return None


def quota_body(account: SimAccount, now: float) -> dict[str, Any]:
    """One bucket per model: the most used window that limits that model."""
    buckets = []
    for model in MODELS:
        window = account.binding_window(now, model)
        fraction = window.fraction if window else 0.0
        remaining = max(0.0, window.capacity - window.used) if window else 0.0
        reset = _iso(window.reset_at(now)) if window else _iso(now + 86400)
        buckets.append(
            {
                "remainingAmount": str(int(remaining)),
                "remainingFraction": round(1 - fraction, 4),
                "resetTime": reset,
                "tokenType": "REQUESTS",
                "modelId": model,
            }
        )
    return {"buckets": buckets}


@attrs.frozen
class _Template:
    deltas: tuple[bytes, ...]  # every chunk but the last, with placeholders
    deltas_blob: bytes
    last_text: str


def _chunk(
    text: str, *, model: bytes | str, rid: bytes | str, last: dict[str, Any] | None = None
) -> bytes:
    candidate: dict[str, Any] = {
        "content": {"role": "model", "parts": [{"text": text}]},
        "index": 0,
    }
    response: dict[str, Any] = {"candidates": [candidate]}
    if last is not None:
        candidate["finishReason"] = "STOP"
        response["usageMetadata"] = last
    model_s = model.decode() if isinstance(model, bytes) else model
    rid_s = rid.decode() if isinstance(rid, bytes) else rid
    response.update(modelVersion=model_s, responseId=rid_s)
    return wire.dumps({"response": response, "traceId": rid_s})


@lru_cache(maxsize=64)
def _template(config: SimConfig) -> _Template:
    pieces = text_pieces(config)
    deltas = tuple(
        wire.sse(None, _chunk(p, model=_MODEL, rid=_RID), crlf=True) for p in pieces[:-1]
    )
    return _Template(deltas, b"".join(deltas), pieces[-1])


def _usage(n_in: int, n_out: int) -> dict[str, int]:
    return {
        "promptTokenCount": n_in,
        "candidatesTokenCount": n_out,
        "totalTokenCount": n_in + n_out,
    }


def _json_mode_text(request: dict[str, Any]) -> str | None:
    """For JSON-mode calls (the CLI's model router) a minimal object that fits the schema."""
    config = request.get("request", {}).get("generationConfig") or {}
    if config.get("responseMimeType") != "application/json":
        return None
    schema = config.get("responseJsonSchema") or config.get("responseSchema") or {"type": "object"}
    return json.dumps(minimal_instance(schema))


async def _reply(
    state: SimState,
    ex: Exchange,
    account: SimAccount,
    method: str,
    request: dict[str, Any],
    body_size: int,
) -> None:
    now = state.now()
    config = state.config_for(account)
    model = config.model or str(request.get("model") or DEFAULT_MODEL)
    n_in, n_out = input_tokens(body_size), output_tokens(config)
    account.consume(account.units_for(n_in, n_out), now, model)
    account.generations += 1
    rid = state.next_request_id("sim-")
    if method == "generateContent":
        text = _json_mode_text(request) or full_text(config)
        chunk = _chunk(text, model=model, rid=rid, last=_usage(n_in, n_out))
        await ex.respond(200, wire.JSON_HEADERS, chunk)
        return
    tpl = _template(config)
    model_b, rid_b = json.dumps(model)[1:-1].encode(), rid.encode()
    last = wire.sse(
        None, _chunk(tpl.last_text, model=model, rid=rid, last=_usage(n_in, n_out)), crlf=True
    )
    error = _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
    if config.streams_plainly:
        deltas: tuple[bytes, ...] = ()
        blob = tpl.deltas_blob.replace(_MODEL, model_b).replace(_RID, rid_b)
    else:
        deltas = tuple(d.replace(_MODEL, model_b).replace(_RID, rid_b) for d in tpl.deltas)
        blob = b""
    await wire.send_stream(
        ex,
        wire.SSE_HEADERS,
        config,
        head=(),
        deltas=deltas,
        deltas_blob=blob,
        tail=(last,),
        error_event=wire.sse(None, wire.dumps(error), crlf=True),
    )


async def _fault(
    ex: Exchange, account: SimAccount, kind: FaultKind, model: str, now: float
) -> None:
    if kind == "quota":
        await wire.respond_json(
            ex,
            429,
            exhausted_body(
                account.binding_window(now, model), model, now, reason="QUOTA_EXHAUSTED"
            ),
        )
    elif kind == "throttle":
        # Capacity of the model on the server, not the account's quota.
        details = [
            {
                "@type": ERROR_INFO,
                "reason": "MODEL_CAPACITY_EXHAUSTED",
                "domain": DOMAIN,
                "metadata": {"model": model},
            }
        ]
        await wire.respond_json(
            ex,
            429,
            _error(
                429,
                "RESOURCE_EXHAUSTED",
                f"No capacity available for model {model} on the server",
                details,
            ),
        )
    elif kind == "overloaded":
        await wire.respond_json(
            ex, 503, _error(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        )
    elif kind == "server_error":
        await wire.respond_json(ex, 500, _error(500, "INTERNAL", "Internal error encountered."))
    else:
        await wire.respond_json(ex, 401, _error(401, "UNAUTHENTICATED", UNAUTHENTICATED))


async def handle(state: SimState, ex: Exchange) -> None:
    """Answer one ``/v1internal:<method>`` or ``/v1internal/operations/...`` request."""
    head = ex.head
    try:
        body = await wire.read_body(ex)
        request = wire.parse_json(body) if head.method == "POST" else {}
    except wire.BadBody as exc:
        await wire.respond_json(ex, 400, _error(400, "INVALID_ARGUMENT", str(exc)))
        return
    account = state.by_access("gemini", wire.bearer(head))
    now = state.now()
    if account is None:
        state.unknown_token_requests += 1
    else:
        account.record(head.path, head.headers, body)
    if account is None or account.expired(now):
        await wire.respond_json(ex, 401, _error(401, "UNAUTHENTICATED", UNAUTHENTICATED))
        return
    project = request.get("project") or request.get("cloudaicompanionProject")
    if project is not None and project != account.project:
        message = f"Permission denied on resource project {project}."
        details = [
            {
                "@type": ERROR_INFO,
                "reason": "CONSUMER_INVALID",
                "domain": "googleapis.com",
                "metadata": {"consumer": f"projects/{project}"},
            }
        ]
        await wire.respond_json(ex, 403, _error(403, "PERMISSION_DENIED", message, details))
        return
    _, colon, method = head.path.partition(":")
    if not colon and "/operations/" in head.path and head.method == "GET":
        # Only the account that started an operation can poll it.
        if not head.path.endswith(_operation_name(account)):
            await wire.respond_json(ex, 404, _error(404, "NOT_FOUND", "Operation not found."))
            return
        account.onboarded = True
        await wire.respond_json(ex, 200, _operation(account))
        return
    if method == "loadCodeAssist":
        await wire.respond_json(ex, 200, load_code_assist(account, request))
        return
    refusal = setup_refusal(account, method, request)
    if refusal is not None:
        await wire.respond_json(ex, *refusal)
        return
    simple: dict[str, Any] = {
        # Onboarding takes a while: the operation is done on its first poll.
        "onboardUser": _operation(account, done=account.onboarded),
        "listExperiments": {},
        "fetchAdminControls": {},
        "recordCodeAssistMetrics": {},
        "getCodeAssistGlobalUserSetting": {
            "cloudaicompanionProject": account.project,
            "freeTierDataCollectionOptin": False,
        },
        "setCodeAssistGlobalUserSetting": {
            "cloudaicompanionProject": account.project,
            "freeTierDataCollectionOptin": bool(request.get("freeTierDataCollectionOptin")),
        },
    }
    if method in simple:
        if method == "setCodeAssistGlobalUserSetting":
            state.settings_changed.append(account.key)
        await wire.respond_json(ex, 200, simple[method])
    elif method == "retrieveUserQuota":
        await wire.respond_json(ex, 200, quota_body(account, now))
    elif method == "countTokens":
        await wire.respond_json(ex, 200, {"totalTokens": input_tokens(len(body))})
    elif method in GENERATION and head.method == "POST":
        model = str(request.get("model") or DEFAULT_MODEL)
        kind = account.take_forced()
        window = account.blocking_window(now, model)
        if kind is not None:
            await _fault(ex, account, kind, model, now)
        elif window is not None:
            await wire.respond_json(ex, 429, exhausted_body(window, model, now))
        else:
            await _reply(state, ex, account, method, request, len(body))
    else:
        await wire.respond_json(ex, 404, _error(404, "NOT_FOUND", f"Method not found: {head.path}"))
