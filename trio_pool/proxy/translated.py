"""Routes whose request's model picks the accounts: native, translated or answered here
(translation.md §0.3, §2, §4, §5).

```
client format (Route.client_format) + the body's model -> translate.routing.decide
    native target  -> the body as it came (a Claude body without foreign thinking)
                      -> proxy.forward's usual path, untouched
    other target   -> answer(): local answer (count_tokens, quota probe) or
                      translate, then the attempt loop with a TranslatedTry
    refusal        -> an error in the client's shape (never a silent re-route)
```
``routed`` is synchronous and cheap on purpose: every native Claude and Codex model call
passes through it, and the native relay must keep its frame chain (proxy.forward).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import attrs

from trio_pool import clock
from trio_pool.logs import bind
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS, Route, RouteKind
from trio_pool.providers.codex import BodyDecodeError, decode_body
from trio_pool.providers.wire import compact_json, join_url, json_value
from trio_pool.proxy import answers
from trio_pool.proxy.attempt_loop import new_request, run_request
from trio_pool.proxy.body import Body
from trio_pool.proxy.translated_try import TranslatedTry
from trio_pool.proxy.translation_plan import plan_translation
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import RequestHead
from trio_pool.services import Services
from trio_pool.translate import local_answers, routing, signatures
from trio_pool.translate.errors import JsonReply, TranslationError
from trio_pool.translate.routing import ClientFormat, Refusal, Target
from trio_pool.usage.ledger import model_of

log = logging.getLogger(__name__)

# A native Claude body can only hold a thinking block Anthropic would refuse if one of these
# is in it (our signatures, OpenAI's encrypted reasoning, an empty signature): a byte search
# keeps every other body byte-for-byte and unparsed (Claude Code signs its body, `cch=`).
_FOREIGN_MARKS = (signatures.PREFIX.encode(), b'"gAAAA', b'"signature":""')
_FORMATS: dict[str, ClientFormat] = {"messages": "messages", "responses": "responses"}
_FORMATS["chat"] = "chat"
_CCH = re.compile(r"cch=[0-9a-f]{5};")


@attrs.frozen
class Foreign:
    """A request the proxy answers otherwise than by forwarding it as it came."""

    decision: Target | Refusal


def routed(services: Services, head: RequestHead, route: Route, body: Body) -> Body | Foreign:
    """The body to forward natively on ``route``, or what else to do with the request."""
    client_format = _FORMATS[route.client_format or ""]
    model = model_of(body.held, head.path) if body.held else None
    if client_format == "responses" and model is None:
        # Codex's built-in provider compresses the body (zstd) and names the model here.
        hint = head.get("x-codex-routing-hint") or ""
        model = hint.partition("model=")[2].split(",")[0].strip() or None
    if model is None:
        if client_format == "chat":
            return Foreign(Refusal("the request names no model", 400))
        return body
    decision = routing.decide(client_format, model, services.config.translate, PROVIDERS)
    if isinstance(decision, Target) and not decision.translated:
        return _without_foreign_thinking(body) if decision.provider == "claude" else body
    return Foreign(decision)


def _without_foreign_thinking(body: Body) -> Body:
    held = body.held
    if not body.replayable or not any(mark in held for mark in _FOREIGN_MARKS):
        return body
    stripped = signatures.strip_foreign_thinking(json_value(held))
    if stripped is None:
        return body
    # The body changed, so Claude Code's attestation of it (`cch=`) no longer holds: say
    # "not signed" (`cch=00000`, accepted) rather than send a wrong one or forge a new one.
    for block in stripped.get("system") or []:
        if isinstance(block, dict) and isinstance(block.get("text"), str):
            block["text"] = _CCH.sub("cch=00000;", block["text"])
    log.info("translate.thinking.stripped reason='signatures Anthropic did not issue'")
    return Body(compact_json(stripped))


def websocket_elsewhere(services: Services, head: RequestHead) -> str | None:
    """Why a Codex WebSocket upgrade must be refused (426, so Codex falls back to HTTP):
    its model is served by Claude accounts, which take no Responses WebSocket (§4.2)."""
    model = _websocket_model(head) if head.path.endswith("/responses") else None
    if model is None:
        return None
    decision = routing.decide("responses", model, services.config.translate, PROVIDERS)
    if isinstance(decision, Target) and not decision.translated:
        return None
    return f"model {model!r} is not served over WebSocket here; use HTTP (POST /v1/responses)"


def _websocket_model(head: RequestHead) -> str | None:
    # Codex names the model in its turn metadata, the built-in provider also in a hint.
    hint = head.get("x-codex-routing-hint") or ""
    model = hint.partition("model=")[2].split(",")[0].strip()
    if model:
        return model
    metadata = json_value(head.get("x-codex-turn-metadata") or "")
    found = metadata.get("model") if isinstance(metadata, dict) else None
    return found if isinstance(found, str) and found else None


async def answer(
    services: Services,
    exchange: Exchange,
    route: Route,
    foreign: Foreign,
    body: Body,
    user: str | None,
) -> None:
    """Answer a request ``routed`` did not send natively."""
    shape = answers.client_shape(route)
    decision = foreign.decision
    if isinstance(decision, Refusal):
        kind = "not_found_error" if decision.status == 404 else "invalid_request_error"
        await answers.send_error(exchange, shape, decision.status, decision.reason, kind)
        return
    if not body.replayable:
        message = "the request body is too large to translate (max_inmem_body_bytes)"
        await answers.send_error(exchange, shape, 413, message, "request_too_large")
        return
    parsed = _parsed(exchange.head, body.held)
    if parsed is None:
        message = "the request body is not a JSON object"
        await answers.send_error(exchange, shape, 400, message, "invalid_request_error")
        return
    local = _local_answer(exchange.head, decision, parsed)
    if local is not None:
        await _send_reply(exchange, local)
        return
    try:
        translation = plan_translation(decision, parsed, exchange.head, services.config.translate)
    except TranslationError as exc:
        await answers.send_error(exchange, shape, 400, str(exc), "invalid_request_error")
        return
    upstream = decision.provider
    bind(provider=upstream)  # the log lines of its tries name the accounts' provider
    url = join_url(services.upstreams[upstream]["upstream"], translation.upstream_path)
    upstream_route = Route(upstream, RouteKind.PROXY, url, client_format=route.client_format)
    request = new_request(
        services,
        exchange,
        upstream_route,
        PROVIDER_REGISTRY[upstream],
        shape,
        key=translation.key,
        user=user,
        model=decision.model,
        replayable=True,
        held=len(body.held),
    )
    issuer = None
    if translation.body_without_reasoning is not None and translation.key is not None:
        # The account the conversation is pinned to issued its reasoning (pins are set as a
        # conversation's requests are answered); any other account gets the body without it.
        issuer = services.pool.pinned_account(upstream, translation.key.value, clock.now())
    log.info(
        "translate.request from=%s to=%s model=%s upstream_model=%s stream=%s",
        decision.client_format,
        upstream,
        _client_model(parsed),
        decision.model,
        translation.client_stream,
    )
    await run_request(request, TranslatedTry(request, translation, issuer))


def _parsed(head: RequestHead, held: bytes) -> dict[str, Any] | None:
    try:
        value = json_value(decode_body(head, held))
    except BodyDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _client_model(parsed: dict[str, Any]) -> str:
    model = parsed.get("model")
    return model[:100] if isinstance(model, str) else ""


def _local_answer(head: RequestHead, target: Target, parsed: dict[str, Any]) -> JsonReply | None:
    """Claude Code's calls a Codex account has no answer for (translation.md §2)."""
    if target.client_format != "messages" or target.provider != "codex":
        return None
    json_type = (("content-type", "application/json"),)
    if head.path.endswith("/count_tokens"):
        # Never upstream: Codex has no such call, and a 404 there once cooled a model 12 h.
        return JsonReply(200, json_type, local_answers.count_tokens_reply(parsed))
    if local_answers.is_quota_probe(parsed):
        # max_tokens: 1 means nothing to Codex: the probe would cost a whole turn.
        return JsonReply(200, json_type, local_answers.quota_probe_reply(parsed))
    return None


async def _send_reply(exchange: Exchange, reply: JsonReply) -> None:
    body = json.dumps(reply.body, ensure_ascii=False, separators=(",", ":")).encode()
    await exchange.respond(reply.status, list(reply.headers), body)
    answers.log_done(exchange.head, reply.status, None)


async def answer_model_list(services: Services, exchange: Exchange, route: Route) -> None:
    """``GET /v1/models`` for a client other than Codex CLI: what the pool can serve, in the
    client's list format (Anthropic's with ``anthropic-version``, else OpenAI's)."""
    config = services.config.translate
    present = {view.provider for view in services.pool.accounts(clock.now())}
    anthropic = route.client_format == "messages"
    # Which providers this client may reach: its own, and the other one through its switch.
    codex = "codex" in present and (config.claude_code_on_codex if anthropic else True)
    claude = "claude" in present and (True if anthropic else config.codex_on_claude)
    if not anthropic and not config.chat_completions:
        codex = claude = False
    ids: list[str] = []
    if claude:
        ids += local_answers.CLAUDE_MODELS
    if codex:
        ids += local_answers.CODEX_MODELS
    reachable = {"codex": codex, "claude": claude}
    for name, rule in config.models.items():
        # Names a user mapped exactly (no glob) are models too.
        if not any(ch in name for ch in "*?[") and reachable.get(rule.to.partition(":")[0]):
            ids.append(name)
    listing = (
        local_answers.anthropic_model_list(ids)
        if anthropic
        else local_answers.openai_model_list(ids)
    )
    await _send_reply(exchange, JsonReply(200, (("content-type", "application/json"),), listing))
