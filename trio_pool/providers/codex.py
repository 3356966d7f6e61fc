"""OpenAI Codex (ChatGPT plan): routes, conversation keys, credentials on the wire, quota
headers, outcomes and the Responses stream (protocols.md §1, real-clients.md §4)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs
import zstandard

from trio_pool.errors import ClientProtocolError
from trio_pool.providers import codex_account
from trio_pool.providers.base import (
    REQUEST_MODEL,
    AccountAction,
    ConversationKey,
    Credentials,
    Outcome,
    OutcomeKind,
    PreparedRequest,
    ProviderName,
    QuotaReading,
    RefreshRequest,
    RefreshResult,
    Route,
    RouteKind,
    StreamEvent,
    StreamObserver,
    TokenUsage,
)
from trio_pool.providers.codex_limits import (
    MAIN_FAMILY,
    active_family,
    family_names,
    family_scope,
    header_families,
    limit_key,
    window,
)
from trio_pool.providers.observe import BodyObserver, parse_wanted
from trio_pool.providers.wire import (
    as_float,
    as_int,
    as_str,
    cloudflare_outcome,
    dig,
    forwardable,
    header_map,
    join_url,
    json_object,
    reading_from_windows,
    retry_after_at,
    short_reason,
    status_outcome,
    websocket_url,
)
from trio_pool.server.messages import Headers, RequestHead

DEFAULT_MAX_DECODED_BYTES = 64 * 1024 * 1024
SESSION_HEADERS = ("session-id", "session_id", "thread-id", "conversation_id")
# Path prefixes of the custom-provider recipe (base_url=.../v1) and of the built-in provider.
INFERENCE_PREFIXES = ("/v1", "/backend-api/codex")
USAGE_PATHS = ("/backend-api/wham/usage", "/api/codex/usage")

# In-stream `response.failed` codes (protocols.md §1.6) by what they mean for the account.
QUOTA_CODES = frozenset({"usage_limit_reached", "insufficient_quota"})
# The account's plan has no Codex at all: nothing resets, its owner must change plan.
NO_CODEX_PLAN = "usage_not_included"
THROTTLE_CODES = frozenset({"rate_limit_exceeded", "server_is_overloaded", "slow_down"})
CLIENT_CODES = frozenset(
    {"context_length_exceeded", "invalid_prompt", "cyber_policy", "invalid_request_error"}
)
# The ChatGPT backend answers some refusals FastAPI-style, {"detail": "..."} or
# {"detail": {"code": ...}}, not in the OpenAI error shape.
DEACTIVATED_WORKSPACE = "deactivated_workspace"
_MODEL_NOT_IN_PLAN = re.compile(r"model is not supported when using Codex with a ChatGPT account")
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s)\b", re.IGNORECASE)


class BodyDecodeError(ClientProtocolError):
    """A Codex request body's Content-Encoding could not be decoded."""


def decode_body(
    head: RequestHead, body: bytes, *, max_bytes: int = DEFAULT_MAX_DECODED_BYTES
) -> bytes:
    """The request body without its Content-Encoding (newer Codex sends ``zstd``)."""
    encoding = (head.get("content-encoding") or "identity").strip().lower()
    if encoding == "identity":
        return body
    if encoding != "zstd":
        raise BodyDecodeError(f"unsupported request Content-Encoding {encoding!r}", 415)
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(
            io.BytesIO(body), read_across_frames=True
        )
        with reader:
            decoded: bytes = reader.read(max_bytes + 1)
    except zstandard.ZstdError as exc:
        raise BodyDecodeError(f"the zstd request body is corrupt ({exc})") from None
    if len(decoded) > max_bytes:
        raise BodyDecodeError(f"the decoded request body is larger than {max_bytes} bytes", 413)
    return decoded


def usage_from(usage: Any) -> TokenUsage | None:
    if not isinstance(usage, dict):
        return None
    return TokenUsage(
        input=as_int(usage.get("input_tokens")),
        cached=as_int(dig(usage, "input_tokens_details", "cached_tokens")),
        output=as_int(usage.get("output_tokens")),
        reasoning=as_int(dig(usage, "output_tokens_details", "reasoning_tokens")),
    )


def no_codex_plan(status: int | None, reason: str, message: str | None) -> Outcome:
    """needs_action ``no_codex_plan``: out of rotation until its pool file changes."""
    text = "plan has no Codex" + (f": {short_reason(message)}" if message else "")
    action = AccountAction("no_codex_plan", text)
    return Outcome(OutcomeKind.ACCOUNT_ACTION, status, reason, action=action)


def inband_failure(error: Any, now: float) -> Outcome:
    """What a `response.failed` / `error` event's error object means for the account."""
    code = as_str(dig(error, "code")) or as_str(dig(error, "type")) or "response_failed"
    message = as_str(dig(error, "message"))
    reason = short_reason(code, message)
    if code == NO_CODEX_PLAN:
        return no_codex_plan(None, reason, message)
    if code in QUOTA_CODES:
        return Outcome(OutcomeKind.QUOTA, None, reason, retry_at=as_float(dig(error, "resets_at")))
    if code in THROTTLE_CODES:
        match = _TRY_AGAIN.search(message or "")
        retry_at = None
        if match:
            seconds = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
            retry_at = now + seconds
        return Outcome(OutcomeKind.THROTTLED, None, reason, retry_at=retry_at)
    if code in CLIENT_CODES:
        return Outcome(OutcomeKind.CLIENT_ERROR, None, reason)
    return Outcome(OutcomeKind.TRANSIENT, None, reason)


@attrs.define(eq=False)
class CodexEvents:
    """The Responses stream events that matter: completion, usage, failures, rate limits.

    ``names``: limit id -> limit name of the extra families the response head named (see
    ``family_names``); a ``codex.rate_limits`` event carries only the id.
    """

    now: float
    names: Mapping[str, str] = attrs.field(factory=dict)
    wanted_events = frozenset(
        {
            "response.completed",
            "response.failed",
            "response.incomplete",
            "error",
            "codex.rate_limits",
        }
    )
    needles = (
        '"response.completed"',
        '"response.failed"',
        '"response.incomplete"',
        '"error"',
        '"codex.rate_limits"',
    )

    def on_sse(self, event: str, data: str) -> StreamEvent | None:
        payload = parse_wanted(data, self.needles)
        return None if payload is None else self.on_payload(payload)

    def on_end(self) -> StreamEvent | None:
        return None

    def on_payload(self, payload: dict[str, Any]) -> StreamEvent | None:
        kind = payload.get("type")
        if kind == "response.completed":
            return StreamEvent(usage=usage_from(dig(payload, "response", "usage")), complete=True)
        if kind == "response.failed":
            return StreamEvent(failure=inband_failure(dig(payload, "response", "error"), self.now))
        if kind == "response.incomplete":
            why = as_str(dig(payload, "response", "incomplete_details", "reason")) or "unknown"
            failure = Outcome(OutcomeKind.CLIENT_ERROR, None, f"response incomplete: {why}")
            usage = usage_from(dig(payload, "response", "usage"))
            return StreamEvent(usage=usage, failure=failure)
        if kind == "error":
            error = payload.get("error") if isinstance(payload.get("error"), dict) else payload
            return StreamEvent(failure=inband_failure(error, self.now))
        if kind == "codex.rate_limits":
            return StreamEvent(quota=rate_limits_event(payload, self.now, self.names))
        return None

    def on_body(self, payload: Any) -> StreamEvent | None:
        usage = usage_from(dig(payload, "usage")) or usage_from(dig(payload, "response", "usage"))
        return None if usage is None else StreamEvent(usage=usage)


def rate_limits_event(
    payload: dict[str, Any], now: float, names: Mapping[str, str] | None = None
) -> QuotaReading | None:
    """A WebSocket / SSE ``codex.rate_limits`` event as a quota reading. An event of an
    extra limit family (``metered_limit_name``) gives that family's model windows only.

    The event names its family by id only ("codex_bengalfox": codex-api rate_limits.rs
    ``parse_rate_limit_event`` sets no limit name); ``names`` (from the response head's
    ``x-<id>-limit-name``) turns the id into the model it limits. Without one the id is the
    scope, which matches no model: the numbers are shown and never gate."""
    windows = []
    limit = as_str(payload.get("metered_limit_name")) or as_str(payload.get("limit_name"))
    family = family_scope(limit, (names or {}).get(limit_key(limit or "")) or limit)
    for slot in ("primary", "secondary"):
        data = dig(payload, "rate_limits", slot)
        minutes = as_float(dig(data, "window_minutes"))
        reset_at = as_float(dig(data, "reset_at"))
        found = window(slot, dig(data, "used_percent"), minutes, reset_at, family)
        if found is not None:
            windows.append(found)
    return reading_from_windows(windows, as_str(payload.get("plan_type")))


class CodexProvider:
    """The Codex provider (stateless: every method is a function of its arguments)."""

    name: ProviderName = "codex"

    def route(self, head: RequestHead, upstreams: Mapping[str, str]) -> Route | None:
        path, query, method = head.path, head.query, head.method
        for prefix in INFERENCE_PREFIXES:
            rest = path.removeprefix(prefix)
            if rest == path:
                continue
            upstream = upstreams["upstream"]
            if rest == "/responses" and method == "GET" and head.wants_upgrade("websocket"):
                url = websocket_url(join_url(upstream, rest, query))
                return Route(self.name, RouteKind.WEBSOCKET, url)
            if rest == "/responses" and method == "POST":
                # The model decides: a Claude model goes to Claude accounts (opt-in, §4).
                url = join_url(upstream, rest, query)
                return Route(self.name, RouteKind.PROXY, url, client_format="responses")
            if rest == "/responses/compact" and method == "POST":
                return Route(self.name, RouteKind.PROXY, join_url(upstream, rest, query))
            if prefix == "/v1" and rest == "/chat/completions" and method == "POST":
                # Chat Completions clients (translation.md §5): the model picks the accounts.
                url = join_url(upstream, "/responses")
                return Route(self.name, RouteKind.PROXY, url, client_format="chat")
            # /v1/models is Claude's too: an anthropic-version header says which client it is.
            if rest == "/models" and method == "GET" and head.get("anthropic-version") is None:
                url = join_url(upstream, rest, query)
                if prefix == "/v1" and "client_version=" not in query:
                    # Not Codex CLI (which sends ?client_version=): an OpenAI-style list.
                    return Route(self.name, RouteKind.MODEL_LIST, url, client_format="chat")
                return Route(self.name, RouteKind.PROXY, url, inference=False)
        if path in USAGE_PATHS and method == "GET":
            url = join_url(upstreams["backend"], "/wham/usage", query)
            return Route(self.name, RouteKind.POOL_USAGE, url)
        if path.startswith("/backend-api/"):
            url = join_url(upstreams["backend"], path.removeprefix("/backend-api"), query)
            return Route(self.name, RouteKind.PROXY, url, inference=False)
        return None

    def conversation_key(self, head: RequestHead, body: bytes | None) -> ConversationKey | None:
        turn_state = (head.get("x-codex-turn-state") or "").strip()
        if turn_state:
            return ConversationKey(turn_state, hard=True)
        for name in SESSION_HEADERS:
            value = (head.get(name) or "").strip()
            if value:
                return ConversationKey(value)
        if not body:
            return None
        try:
            decoded = decode_body(head, body)
        except BodyDecodeError:
            return None
        if b'"prompt_cache_key"' not in decoded:
            return None  # skip parsing a large body that cannot carry the key
        key = as_str(dig(json_object(decoded), "prompt_cache_key"))
        return ConversationKey(key) if key else None

    def prepare(
        self,
        route: Route,
        head: RequestHead,
        body: bytes,
        credentials: Credentials,
        *,
        fast: bool = False,
    ) -> PreparedRequest:
        headers = forwardable(head.headers)
        headers.append(("authorization", f"Bearer {credentials.access_token}"))
        if credentials.account_id:
            headers.append(("chatgpt-account-id", credentials.account_id))
        prepared = PreparedRequest(head.method, route.upstream_url, tuple(headers), body)
        return with_priority_tier(prepared) if fast else prepared

    def read_quota(self, headers: Headers, now: float) -> QuotaReading | None:
        fields = header_map(headers)
        windows = []
        # The main family (x-codex-primary-*) and every extra one (x-<id>-primary-*, as
        # codex-api rate_limits.rs finds them), each family's windows apart. When the
        # request counted against an extra family, x-codex-primary-* is a copy of that
        # family's numbers (live captures: byte for byte on a Spark turn; openai/codex's
        # pool tests send 100 % there on a Spark 429), not the account's: skipped.
        families = header_families(fields)
        if active_family(fields) is not None:
            families.remove(MAIN_FAMILY)
        for family_id in families:
            prefix = f"x-{family_id}-"
            family = family_scope(family_id, fields.get(prefix + "limit-name"))
            for slot in ("primary", "secondary"):
                slot_prefix = f"{prefix}{slot}-"
                reset_at = as_float(fields.get(slot_prefix + "reset-at"))
                after = as_float(fields.get(slot_prefix + "reset-after-seconds"))
                if reset_at is None and after is not None:
                    reset_at = now + after
                minutes = as_float(fields.get(slot_prefix + "window-minutes"))
                used = fields.get(slot_prefix + "used-percent")
                found = window(slot, used, minutes, reset_at, family)
                if found is not None:
                    windows.append(found)
        return reading_from_windows(windows, as_str(fields.get("x-codex-plan-type")))

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        quota = self.read_quota(headers, now)
        if 200 <= status < 300:
            return Outcome(OutcomeKind.OK, status, quota=quota)
        blocked = cloudflare_outcome(status, headers)
        if blocked is not None:
            return blocked
        payload = json_object(body)
        error = dig(payload, "error")
        detail = dig(payload, "detail")
        code = (
            as_str(dig(error, "type")) or as_str(dig(error, "code")) or as_str(dig(detail, "code"))
        )
        message = as_str(dig(error, "message")) or as_str(detail) or as_str(dig(detail, "message"))
        reason = short_reason(code, message)
        if status == 402 and code == DEACTIVATED_WORKSPACE:
            # The account's workspace is switched off (sometimes only for a while: nanobot#1738).
            return Outcome(OutcomeKind.FORBIDDEN, status, reason, quota)
        if status == 400 and message and _MODEL_NOT_IN_PLAN.search(message):
            return Outcome(OutcomeKind.WRONG_PLAN, status, reason, quota)
        if status == 429:
            if code == "usage_limit_reached":
                retry_at = as_float(dig(error, "resets_at"))
                seconds = as_float(dig(error, "resets_in_seconds"))
                if retry_at is None and seconds is not None:
                    retry_at = now + seconds
                if retry_at is None and quota is not None:
                    retry_at = quota.resets_at
                # x-codex-active-limit names the family that refused: an extra family's
                # limit stops only its model on this account.
                fields = header_map(headers)
                active = active_family(fields)
                if active is not None:
                    name = (fields.get(f"x-{active}-limit-name") or "").strip()
                    scope = name or REQUEST_MODEL
                    return Outcome(OutcomeKind.QUOTA, status, reason, quota, retry_at, scope=scope)
                return Outcome(OutcomeKind.QUOTA, status, reason, quota, retry_at)
            if code == NO_CODEX_PLAN:
                # The plan has no Codex at all: no reset to wait for, retrying every hour
                # forever helps nobody. Out of rotation until the pool file changes.
                return attrs.evolve(no_codex_plan(status, reason, message), quota=quota)
            if quota is not None and quota.exhausted:
                reason = reason or "a Codex quota window is at 100%"
                return Outcome(OutcomeKind.QUOTA, status, reason, quota, quota.resets_at)
        return status_outcome(status, reason, quota, retry_after_at(header_map(headers), now))

    def observer(self, head: RequestHead, response_headers: Headers, now: float) -> StreamObserver:
        events = CodexEvents(now, family_names(header_map(response_headers)))
        return BodyObserver.for_response(events, response_headers)

    def error_response(
        self, status: int, message: str, *, kind: str = "proxy_error"
    ) -> tuple[list[tuple[str, str]], bytes]:
        body = {"error": {"message": message, "type": kind, "code": kind}}
        return [("content-type", "application/json")], json.dumps(body).encode()

    def stream_error_event(self, message: str, *, kind: str = "proxy_error") -> bytes:
        payload = {
            "type": "response.failed",
            "response": {
                "id": "resp_trio_pool_error",
                "object": "response",
                "status": "failed",
                "error": {"code": kind, "message": message},
            },
        }
        return b"event: response.failed\ndata: " + json.dumps(payload).encode() + b"\n\n"

    def parse_credentials(self, document: Mapping[str, Any]) -> Credentials:
        return codex_account.parse_credentials(document)

    def refresh_request(self, credentials: Credentials, token_url: str) -> RefreshRequest:
        return codex_account.refresh_request(credentials, token_url)

    def refresh_result(
        self, status: int, body: bytes, document: Mapping[str, Any], now: float
    ) -> RefreshResult:
        return codex_account.refresh_result(status, body, document, now)

    def usage_request(
        self, credentials: Credentials, upstreams: Mapping[str, str]
    ) -> PreparedRequest | None:
        return codex_account.usage_request(credentials, upstreams)

    def parse_usage(self, status: int, body: bytes, now: float) -> QuotaReading | None:
        return codex_account.parse_usage(status, body, now)


def with_priority_tier(prepared: PreparedRequest) -> PreparedRequest:
    """Codex fast mode: ask for ``service_tier = "priority"`` unless the client chose a tier.

    Only Responses calls carry a tier. A zstd body is decoded and sent plain (the upstream
    accepts both); anything that does not parse as a JSON object is left untouched.
    """
    if not prepared.url.split("?", 1)[0].endswith("/responses"):
        return prepared
    head = RequestHead(method=prepared.method, target="/", headers=prepared.headers)
    try:
        document = json_object(decode_body(head, prepared.body))
    except BodyDecodeError:
        return prepared
    if not document or "service_tier" in document:
        return prepared
    document["service_tier"] = "priority"
    headers = tuple((k, v) for k, v in prepared.headers if k != "content-encoding")
    body = json.dumps(document, separators=(",", ":")).encode()
    return attrs.evolve(prepared, headers=headers, body=body)
