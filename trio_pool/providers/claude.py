"""Anthropic Claude (Claude.ai subscription): routes, conversation keys, the OAuth beta,
unified rate-limit headers, outcomes and the Messages stream (protocols.md §2,
real-clients.md §5)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from trio_pool.providers import claude_account
from trio_pool.providers.base import (
    AccountAction,
    ConversationKey,
    Credentials,
    Outcome,
    OutcomeKind,
    PreparedRequest,
    ProviderName,
    QuotaReading,
    QuotaWindow,
    RefreshRequest,
    RefreshResult,
    Route,
    RouteKind,
    StreamEvent,
    StreamObserver,
    TokenUsage,
)
from trio_pool.providers.observe import BodyObserver, parse_wanted
from trio_pool.providers.wire import (
    as_float,
    as_int,
    as_str,
    clamp_fraction,
    cloudflare_outcome,
    dig,
    forwardable,
    header_map,
    join_url,
    json_object,
    retry_after_at,
    short_reason,
    status_outcome,
)
from trio_pool.server.messages import Headers, RequestHead

OAUTH_BETA = "oauth-2025-04-20"
CLAUDE_CODE_BETA = "claude-code-20250219"
# A subscriber's 1-hour prompt cache (cache_control ttl "1h"): Claude Code sends it with OAuth.
EXTENDED_CACHE_TTL_BETA = "extended-cache-ttl-2025-04-11"
UNIFIED = "anthropic-ratelimit-unified-"
MESSAGE_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
_LEGACY_USER_ID = re.compile(r"_session_([0-9A-Za-z-]+)$")
# Subscription windows only ("5h", "7d", "7d_opus", ...): "overage" is extra usage, not quota.
_WINDOW = re.compile(r"^\d+[hd](?:_[a-z_]+)?$")
WINDOW_SECONDS = {"5h": 5 * 3600.0, "7d": 7 * 86400.0}
CLAIM_WINDOWS = {"five_hour": "5h", "seven_day": "7d", "seven_day_opus": "7d_opus"}
CLAIM_WINDOWS["seven_day_sonnet"] = "7d_sonnet"
# The one 403 that a refresh fixes: Claude Code refreshes on 401 and on this (protocols.md §2.4).
REVOKED = "OAuth token has been revoked"
# The organization behind the subscription is switched off: no refresh or cooldown helps, its
# owner must act (CP disables such accounts; refreshing them every minute only spends tokens).
ORG_DISABLED = "organization has been disabled"
# Windows that limit one model family: a rejection they represent cools that family only.
MODEL_SCOPES = {"7d_opus": "opus", "7d_sonnet": "sonnet"}

# Anthropic error types by what they mean for the account.
ERROR_KINDS = {
    "overloaded_error": OutcomeKind.THROTTLED,
    "rate_limit_error": OutcomeKind.THROTTLED,
    "api_error": OutcomeKind.TRANSIENT,
    "timeout_error": OutcomeKind.TRANSIENT,
    "authentication_error": OutcomeKind.AUTH,
    "permission_error": OutcomeKind.FORBIDDEN,
    "invalid_request_error": OutcomeKind.CLIENT_ERROR,
    "not_found_error": OutcomeKind.CLIENT_ERROR,
    "request_too_large": OutcomeKind.CLIENT_ERROR,
}
ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def error_type_for(status: int, kind: str) -> str:
    if kind in ERROR_KINDS:
        return kind
    return ERROR_TYPE_BY_STATUS.get(
        status, "api_error" if status >= 500 else "invalid_request_error"
    )


def session_from_user_id(user_id: str) -> str | None:
    """The session in ``metadata.user_id``: a JSON string (2.1.x) or the legacy
    ``user_<hex>_account_<uuid>_session_<uuid>`` form."""
    if user_id.startswith("{"):
        return as_str(dig(json_object(user_id), "session_id"))
    match = _LEGACY_USER_ID.search(user_id)
    return match.group(1) if match else None


def scoped_rejection(quota: QuotaReading, name: str, scope: str) -> QuotaReading:
    """A rejection by a model window: that window reads full until the reset, and the
    reading no longer says the account is out."""
    window = QuotaWindow(name, 1.0, WINDOW_SECONDS["7d"], quota.resets_at, scope)
    others = tuple(w for w in quota.windows if w.name != name)
    return QuotaReading((*others, window), quota.plan, False, None)


def add_oauth_beta(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The client's ``anthropic-beta`` as Claude Code sends it with a subscription token.

    A subscriber client (Claude Code with an OAuth token) already has it: left untouched.
    Otherwise (a client in API-key mode, an SDK) the OAuth beta goes second, after
    ``claude-code-20250219`` (first when absent), and ``extended-cache-ttl-2025-04-11`` last,
    in Claude Code 2.1.330's order (real-clients.md §5).
    """
    places = [i for i, (key, _) in enumerate(headers) if key == "anthropic-beta"]
    betas = [b.strip() for i in places for b in headers[i][1].split(",") if b.strip()]
    if OAUTH_BETA in betas:
        return headers
    at = betas.index(CLAUDE_CODE_BETA) + 1 if CLAUDE_CODE_BETA in betas else 0
    betas.insert(at, OAUTH_BETA)
    if EXTENDED_CACHE_TTL_BETA not in betas:
        betas.append(EXTENDED_CACHE_TTL_BETA)
    merged = ("anthropic-beta", ",".join(betas))
    if not places:
        return [*headers, merged]
    kept = [h for i, h in enumerate(headers) if i not in places[1:]]
    kept[places[0]] = merged
    return kept


def _tokens(value: Any) -> int:
    """``as_int`` of a token count, the JSON integers the API sends taken as they are: a
    few times cheaper than going through float (which is exact below 2**53)."""
    if type(value) is int and 0 <= value < 2**53:
        return value
    return as_int(value)


# An account repeats its unified fields until its utilization moves (each window's reset is
# fixed), so most answers carry fields already read: remember the last readings.
@functools.lru_cache(maxsize=64)
def unified_reading(fields: tuple[tuple[str, str], ...]) -> QuotaReading | None:
    """The reading of the ``anthropic-ratelimit-unified-*`` headers (the first of each name)."""
    first: dict[str, str] = {}
    for key, value in fields:
        first.setdefault(key, value)
    status = first.get(UNIFIED + "status", "").strip().lower()
    windows = []
    for key, value in first.items():
        if not key.endswith("-utilization"):
            continue
        name = key[len(UNIFIED) : -len("-utilization")]
        used = as_float(value)
        if used is None or not _WINDOW.match(name):
            continue
        window_s = WINDOW_SECONDS.get(name.split("_")[0])
        reset_at = as_float(first.get(f"{UNIFIED}{name}-reset"))
        scope = MODEL_SCOPES.get(name)
        windows.append(QuotaWindow(name, clamp_fraction(used), window_s, reset_at, scope))
    if not status and not windows:
        return None
    # Only `status: rejected` means exhausted: with extra usage enabled a window can be
    # at 100 % while requests are still allowed.
    exhausted = status == "rejected"
    resets_at = None
    if exhausted:
        resets_at = as_float(first.get(UNIFIED + "reset"))
        claim = CLAIM_WINDOWS.get(first.get(UNIFIED + "representative-claim", ""))
        for found in windows:
            if resets_at is None and found.name == claim:
                resets_at = found.resets_at
    return QuotaReading(tuple(windows), None, exhausted, resets_at)


@attrs.define(eq=False)
class ClaudeEvents:
    """Usage from message_start + message_delta, completion, and `event: error`."""

    _input: int = 0
    _cache_creation: int = 0
    _cache_read: int = 0
    _output: int = 0
    _complete: bool = False
    wanted_events = frozenset({"message_start", "message_delta", "message_stop", "error"})
    needles = ('"message_start"', '"message_delta"', '"message_stop"', '"error"')

    def on_sse(self, event: str, data: str) -> StreamEvent | None:
        payload = parse_wanted(data, self.needles)
        return None if payload is None else self.on_payload(payload)

    def on_end(self) -> StreamEvent | None:
        return None

    def on_payload(self, payload: dict[str, Any]) -> StreamEvent | None:
        kind = payload.get("type")
        if kind == "message_start":
            return StreamEvent(usage=self._count(dig(payload, "message", "usage")))
        if kind == "message_delta":
            usage = self._count(payload.get("usage"))
            stop = dig(payload, "delta", "stop_reason") is not None
            return StreamEvent(usage=usage, complete=self._completes(stop))
        if kind == "message_stop":
            return StreamEvent(complete=True) if self._completes(True) else None
        if kind == "error":
            return StreamEvent(failure=inband_failure(payload.get("error")))
        return None

    def on_body(self, payload: Any) -> StreamEvent | None:
        if dig(payload, "type") != "message":
            return None  # count_tokens, models: no usage to record
        return StreamEvent(usage=self._count(dig(payload, "usage")), complete=True)

    def _completes(self, seen: bool) -> bool:
        # message_delta with a stop_reason and message_stop both end a reply: report once.
        if not seen or self._complete:
            return False
        self._complete = True
        return True

    def _count(self, usage: Any) -> TokenUsage | None:
        if not isinstance(usage, dict):
            return None
        # Later events repeat some counts (output is cumulative): a present field replaces.
        if "input_tokens" in usage:
            self._input = _tokens(usage["input_tokens"])
        if "cache_creation_input_tokens" in usage:
            self._cache_creation = _tokens(usage["cache_creation_input_tokens"])
        if "cache_read_input_tokens" in usage:
            self._cache_read = _tokens(usage["cache_read_input_tokens"])
        if "output_tokens" in usage:
            self._output = _tokens(usage["output_tokens"])
        return TokenUsage(
            input=self._input + self._cache_creation + self._cache_read,
            cached=self._cache_read,
            output=self._output,
        )


def inband_failure(error: Any) -> Outcome:
    kind = as_str(dig(error, "type")) or "api_error"
    reason = short_reason(kind, as_str(dig(error, "message")))
    return Outcome(ERROR_KINDS.get(kind, OutcomeKind.TRANSIENT), None, reason)


class ClaudeProvider:
    """The Claude provider (stateless: every method is a function of its arguments)."""

    name: ProviderName = "claude"

    def route(self, head: RequestHead, upstreams: Mapping[str, str]) -> Route | None:
        path, method = head.path, head.method
        accepted = (method == "POST" and path in MESSAGE_PATHS) or (
            method == "GET"
            and (path == "/v1/models" or path.startswith("/v1/models/"))
            and head.get("anthropic-version") is not None
        )
        if not accepted:
            return None
        url = join_url(upstreams["upstream"], path, head.query)
        if method == "GET":
            if path == "/v1/models":
                # Listed by the proxy: Claude's models and the Codex ones it can serve.
                return Route(self.name, RouteKind.MODEL_LIST, url, client_format="messages")
            return Route(self.name, RouteKind.PROXY, url, inference=False)
        # The model decides: a Codex model goes to Codex accounts (translation.md §0.3).
        inference = path == "/v1/messages"
        return Route(self.name, RouteKind.PROXY, url, inference=inference, client_format="messages")

    def conversation_key(self, head: RequestHead, body: bytes | None) -> ConversationKey | None:
        header = (head.get("x-claude-code-session-id") or "").strip()
        if header:
            return ConversationKey(header)
        if not body or b'"user_id"' not in body:
            return None
        user_id = as_str(dig(json_object(body), "metadata", "user_id"))
        session = session_from_user_id(user_id) if user_id else None
        return ConversationKey(session) if session else None

    def prepare(
        self,
        route: Route,
        head: RequestHead,
        body: bytes,
        credentials: Credentials,
        *,
        fast: bool = False,
    ) -> PreparedRequest:
        headers = add_oauth_beta(forwardable(head.headers))
        headers.append(("authorization", f"Bearer {credentials.access_token}"))
        return PreparedRequest(head.method, route.upstream_url, tuple(headers), body)

    def read_quota(self, headers: Headers, now: float) -> QuotaReading | None:
        # Only the unified rate-limit fields (read on every answer: the rest is skipped).
        fields = tuple([field for field in headers if field[0].startswith(UNIFIED)])
        return unified_reading(fields) if fields else None

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        quota = self.read_quota(headers, now)
        if 200 <= status < 300:
            return Outcome(OutcomeKind.OK, status, quota=quota)
        blocked = cloudflare_outcome(status, headers)
        if blocked is not None:
            return blocked
        error = dig(json_object(body), "error")
        kind = as_str(dig(error, "type"))
        message = as_str(dig(error, "message")) or ""
        reason = short_reason(kind, message)
        if status == 403 and REVOKED in message:
            return Outcome(OutcomeKind.AUTH, status, reason, quota)
        if status in (400, 403) and ORG_DISABLED in message.lower():
            action = AccountAction("org_disabled", short_reason(message))
            return Outcome(OutcomeKind.ACCOUNT_ACTION, status, reason, quota, action=action)
        retry_at = retry_after_at(header_map(headers), now)
        if status == 429 and quota is not None and quota.exhausted:
            claim = CLAIM_WINDOWS.get(header_map(headers).get(UNIFIED + "representative-claim", ""))
            scope = MODEL_SCOPES.get(claim or "")
            if scope is not None:
                # The weekly Opus (or Sonnet) limit: the other models still serve.
                return Outcome(
                    OutcomeKind.QUOTA,
                    status,
                    reason,
                    scoped_rejection(quota, claim or "", scope),
                    quota.resets_at,
                    scope=scope,
                )
            return Outcome(OutcomeKind.QUOTA, status, reason, quota, quota.resets_at)
        if kind == "overloaded_error":
            # Anthropic's capacity, not the account's: a short backoff whatever the status.
            return Outcome(OutcomeKind.THROTTLED, status, reason, quota, retry_at)
        return status_outcome(status, reason, quota, retry_at)

    def observer(self, head: RequestHead, response_headers: Headers, now: float) -> StreamObserver:
        return BodyObserver.for_response(ClaudeEvents(), response_headers)

    def error_response(
        self, status: int, message: str, *, kind: str = "proxy_error"
    ) -> tuple[list[tuple[str, str]], bytes]:
        body = {
            "type": "error",
            "error": {"type": error_type_for(status, kind), "message": message},
        }
        return [("content-type", "application/json")], json.dumps(body).encode()

    def stream_error_event(self, message: str, *, kind: str = "proxy_error") -> bytes:
        error_type = kind if kind in ERROR_KINDS else "api_error"
        payload = {"type": "error", "error": {"type": error_type, "message": message}}
        return b"event: error\ndata: " + json.dumps(payload).encode() + b"\n\n"

    def parse_credentials(self, document: Mapping[str, Any]) -> Credentials:
        return claude_account.parse_credentials(document)

    def refresh_request(self, credentials: Credentials, token_url: str) -> RefreshRequest:
        return claude_account.refresh_request(credentials, token_url)

    def refresh_result(
        self, status: int, body: bytes, document: Mapping[str, Any], now: float
    ) -> RefreshResult:
        return claude_account.refresh_result(status, body, document, now)

    def usage_request(
        self, credentials: Credentials, upstreams: Mapping[str, str]
    ) -> PreparedRequest | None:
        return claude_account.usage_request(credentials, upstreams)

    def parse_usage(self, status: int, body: bytes, now: float) -> QuotaReading | None:
        return claude_account.parse_usage(status, body, now)
