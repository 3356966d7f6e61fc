"""Google Gemini CLI (Code Assist): routes, conversation keys, the per-account project in
the body, Google RPC errors and the generateContent stream (protocols.md §3,
real-clients.md §6)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from trio_pool.providers import gemini_account
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
from trio_pool.providers.observe import BodyObserver, merge
from trio_pool.providers.wire import (
    as_int,
    as_str,
    compact_json,
    dig,
    forwardable,
    header_map,
    join_url,
    json_object,
    json_value,
    parse_duration,
    parse_timestamp,
    retry_after_at,
    short_reason,
    status_outcome,
)
from trio_pool.server.messages import Headers, RequestHead

PROMPT_ID_SEPARATOR = "########"
# Code Assist's set-up calls, which name the project the account works in.
SETUP_METHODS = (":loadCodeAssist", ":onboardUser")
ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
HELP = "type.googleapis.com/google.rpc.Help"
CLOUDCODE_DOMAINS = frozenset(
    {
        "cloudcode-pa.googleapis.com",
        "staging-cloudcode-pa.googleapis.com",
        "autopush-cloudcode-pa.googleapis.com",
    }
)
# "limit: 0": the account has no quota at all for this model today (the CLI: terminal).
_LIMIT_ZERO = re.compile(r"limit:\s*0(?!\d|\.\d)")
# Google's capacity, not the account's quota: another account may get through at once.
CAPACITY_REASONS = frozenset({"MODEL_CAPACITY_EXHAUSTED", "MODEL_CAPACITY_EXCEEDED"})
_MESSAGE_DELAY = re.compile(r"(?:retry in|reset after)\s+(\d+(?:\.\d+)?)\s*(ms|s)\b", re.I)
STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


def rpc_error(payload: Any) -> dict[str, Any] | None:
    """The ``error`` object of a Google RPC answer (also the ``[{...}]`` array form)."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    error = dig(payload, "error")
    return error if isinstance(error, dict) else None


def error_outcome(status: int, error: dict[str, Any] | None, now: float) -> Outcome:
    """What a Google RPC error means for the account (design.md §3.2), following the
    Gemini CLI's classifyGoogleError (googleQuotaErrors.ts).

    Code Assist quotas are per model (retrieveUserQuota has one bucket per model), so a
    quota 429 cools only its model on the account: the model the ErrorInfo names, else the
    request's. A daily quota (QuotaFailure ``quotaId`` with PerDay/Daily) or ``limit: 0`` is
    terminal for that model until the daily reset, midnight Pacific time.
    """
    message = as_str(dig(error, "message")) or ""
    details = dig(error, "details")
    details = details if isinstance(details, list) else []
    reasons: set[str] = set()
    delay: float | None = None
    reset_at: float | None = None
    quota_signal = False
    model: str | None = None
    daily = False
    for detail in details:
        kind = dig(detail, "@type")
        if kind == ERROR_INFO:
            reason = as_str(dig(detail, "reason"))
            if reason:
                reasons.add(reason)
            model = model or as_str(dig(detail, "metadata", "model"))
            found = parse_duration(dig(detail, "metadata", "quotaResetDelay"))
            stamp = parse_timestamp(dig(detail, "metadata", "quotaResetTimeStamp"))
            quota_signal = quota_signal or found is not None or stamp is not None
            delay = found if delay is None else delay
            reset_at = stamp if reset_at is None else reset_at
        elif kind == RETRY_INFO:
            found = parse_duration(dig(detail, "retryDelay"))
            quota_signal = quota_signal or found is not None
            delay = found if found is not None else delay
        elif kind == QUOTA_FAILURE:
            violations = dig(detail, "violations")
            for violation in violations if isinstance(violations, list) else ():
                quota_id = as_str(dig(violation, "quotaId")) or ""
                daily = daily or "PerDay" in quota_id or "Daily" in quota_id
    reason = short_reason(",".join(sorted(reasons)) or as_str(dig(error, "status")), message)
    if status == 403 and (action := validation_action(details, message)) is not None:
        return Outcome(OutcomeKind.ACCOUNT_ACTION, status, reason, action=action)
    if status not in (429, 499, 503):
        return status_outcome(status, reason)
    scope = model or REQUEST_MODEL
    if daily or _LIMIT_ZERO.search(message.lower()):
        # Nothing comes back before the day's reset: no point asking again sooner.
        return Outcome(
            OutcomeKind.QUOTA, status, reason, retry_at=next_daily_reset(now), scope=scope
        )
    if status != 429:
        return status_outcome(status, reason)
    if delay is None and (match := _MESSAGE_DELAY.search(message)):
        delay = float(match.group(1)) / (1000 if match.group(2).lower() == "ms" else 1)
    retry_at = reset_at if reset_at is not None else (now + delay if delay is not None else None)
    if reasons & CAPACITY_REASONS:
        return Outcome(OutcomeKind.THROTTLED, status, reason, retry_at=retry_at)
    if "QUOTA_EXHAUSTED" in reasons or quota_signal:
        return Outcome(OutcomeKind.QUOTA, status, reason, retry_at=retry_at, scope=scope)
    return Outcome(OutcomeKind.THROTTLED, status, reason, retry_at=retry_at)


def validation_action(details: list[Any], message: str) -> AccountAction | None:
    """403 VALIDATION_REQUIRED from Code Assist: the user must verify the account at a link
    (googleQuotaErrors.ts: the first Help link, else ErrorInfo ``validation_link``)."""
    info = next((d for d in details if dig(d, "@type") == ERROR_INFO), None)
    domain = as_str(dig(info, "domain")) or ""
    if as_str(dig(info, "reason")) != "VALIDATION_REQUIRED" or domain not in CLOUDCODE_DOMAINS:
        return None
    links = next((dig(d, "links") for d in details if dig(d, "@type") == HELP), None)
    link = as_str(dig(links[0], "url")) if isinstance(links, list) and links else None
    link = link or as_str(dig(info, "metadata", "validation_link"))
    return AccountAction(
        "validation_required", message or "Google asks to verify this account", link
    )


def next_daily_reset(now: float) -> float:
    """Midnight America/Los_Angeles after ``now``: when Code Assist daily quotas come back
    (as peers observe, peers.md §2.4). UTC-8 when the time zone data is missing."""
    try:
        zone: tzinfo = ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:
        zone = timezone(timedelta(hours=-8))
    local = datetime.fromtimestamp(now, tz=zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(), tzinfo=zone)
    return midnight.timestamp()


@attrs.define(eq=False)
class GeminiEvents:
    """The last usageMetadata, a candidate's finishReason, and in-band ``{"error": ...}``.

    Every chunk carries usageMetadata, and only the last one counts: a chunk with usage
    only is kept as text and parsed when the stream finishes or ends, never chunk by chunk.
    """

    now: float
    _pending_usage: str | None = None
    _usage: TokenUsage | None = None
    _complete: bool = False
    wanted_events = None

    def on_sse(self, event: str, data: str) -> StreamEvent | None:
        if '"error"' in data or '"finishReason"' in data:
            payload = json_object(data)
            if payload is not None:
                return self.on_payload(payload)
        elif '"usageMetadata"' in data:
            self._pending_usage = data
        return None

    def on_end(self) -> StreamEvent | None:
        pending, self._pending_usage = self._pending_usage, None
        payload = json_object(pending) if pending is not None else None
        return self._chunk(payload) if payload is not None else None

    def on_payload(self, payload: dict[str, Any]) -> StreamEvent | None:
        error = rpc_error(payload)
        if error is not None:
            code = as_int(error.get("code")) or 500
            outcome = error_outcome(code, error, self.now)
            return StreamEvent(failure=attrs.evolve(outcome, status=None))
        pending, self._pending_usage = self._pending_usage, None
        earlier = None
        if pending is not None and dig(payload.get("response", payload), "usageMetadata") is None:
            # This chunk has no counts of its own: the pending ones are still the last.
            pending_payload = json_object(pending)
            earlier = self._chunk(pending_payload) if pending_payload is not None else None
        return merge(earlier, self._chunk(payload))

    def on_body(self, payload: Any) -> StreamEvent | None:
        name = as_str(dig(payload, "name"))
        if name and name.startswith("operations/") and dig(payload, "done") is not True:
            return StreamEvent(pin=name)  # an onboarding operation: its account polls it
        if isinstance(payload, list):  # a non-SSE streamGenerateContent is a JSON array
            result = None
            for item in payload:
                if isinstance(item, dict):
                    result = merge(result, self.on_payload(item))
            return result
        return self.on_payload(payload) if isinstance(payload, dict) else None

    def _chunk(self, payload: dict[str, Any]) -> StreamEvent | None:
        # Code Assist wraps each chunk in {"response": ...}; the public API does not.
        response = payload.get("response", payload)
        meta = dig(response, "usageMetadata")
        usage = None
        if isinstance(meta, dict):
            thoughts = as_int(meta.get("thoughtsTokenCount"))
            usage = TokenUsage(
                input=as_int(meta.get("promptTokenCount")),
                cached=as_int(meta.get("cachedContentTokenCount")),
                output=as_int(meta.get("candidatesTokenCount")) + thoughts,
                reasoning=thoughts,
            )
            usage = None if usage == self._usage else usage
            self._usage = usage or self._usage
        candidates = dig(response, "candidates")
        finished = isinstance(candidates, list) and any(
            as_str(dig(c, "finishReason")) for c in candidates
        )
        complete = finished and not self._complete
        self._complete = self._complete or finished
        return StreamEvent(usage=usage, complete=complete) if usage or complete else None


# The model calls; loadCodeAssist, retrieveUserQuota, listExperiments, countTokens and the
# rest are side calls.
GENERATE_PATHS = frozenset({"/v1internal:streamGenerateContent", "/v1internal:generateContent"})
OPERATIONS_PREFIX = "/v1internal/operations/"
SETTINGS_PATH = "/v1internal:setCodeAssistGlobalUserSetting"
SETTINGS_REFUSAL = (
    "trio-pool does not change the settings of pooled Google accounts: they belong to each "
    "account's owner. Change it with the Gemini CLI logged in to that account."
)


class GeminiProvider:
    """The Gemini provider (stateless: every method is a function of its arguments)."""

    name: ProviderName = "gemini"

    def route(self, head: RequestHead, upstreams: Mapping[str, str]) -> Route | None:
        path = head.path
        if not path.startswith(("/v1internal:", "/v1internal/operations")):
            return None
        url = join_url(upstreams["upstream"], path, head.query)
        if path == SETTINGS_PATH:
            # The privacy opt-in of whichever account the pool would pick: it belongs to
            # that account's owner, and changing a random one helps no one. Reading it is
            # harmless (forwarded); changing it is refused here.
            return Route(self.name, RouteKind.PROXY, url, inference=False, refusal=SETTINGS_REFUSAL)
        if path.startswith(OPERATIONS_PREFIX):
            return Route(self.name, RouteKind.PROXY, url, inference=False, follows_pin=True)
        return Route(self.name, RouteKind.PROXY, url, inference=path in GENERATE_PATHS)

    def conversation_key(self, head: RequestHead, body: bytes | None) -> ConversationKey | None:
        if head.path.startswith(OPERATIONS_PREFIX):
            # Hard: an operation exists only on the account that started it.
            return ConversationKey(head.path.removeprefix("/v1internal/"), hard=True)
        if not body or (b'"session_id"' not in body and b'"user_prompt_id"' not in body):
            return None
        payload = json_object(body)
        session = as_str(dig(payload, "request", "session_id"))
        if session is None:
            prompt_id = as_str(dig(payload, "user_prompt_id"))
            session = prompt_id.partition(PROMPT_ID_SEPARATOR)[0] if prompt_id else None
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
        headers = forwardable(head.headers)
        headers.append(("authorization", f"Bearer {credentials.access_token}"))
        setup = head.path.endswith(SETUP_METHODS)
        if credentials.project and (b"roject" in body or route.inference or setup):
            # Model calls must name the project (the CLI always does; the proxy's own Try it
            # and other clients may not): it is added when missing. The CLI's own set-up
            # calls carry no project unless its user set GOOGLE_CLOUD_PROJECT; without one a
            # Standard tier answers no project and the CLI stops (ProjectIdRequiredError), so
            # they get the serving account's project too.
            body = with_project(body, credentials.project, add=route.inference, setup=setup)
        return PreparedRequest(head.method, route.upstream_url, tuple(headers), body)

    def read_quota(self, headers: Headers, now: float) -> QuotaReading | None:
        return None  # Code Assist sends no quota headers (protocols.md §3.6)

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        if 200 <= status < 300:
            return Outcome(OutcomeKind.OK, status)
        outcome = error_outcome(status, rpc_error(json_value(body)), now)
        if outcome.retry_at is None and outcome.kind is OutcomeKind.THROTTLED:
            outcome = attrs.evolve(outcome, retry_at=retry_after_at(header_map(headers), now))
        return outcome

    def observer(self, head: RequestHead, response_headers: Headers, now: float) -> StreamObserver:
        # The CLI does not check the content type of ?alt=sse answers; neither do we.
        sse = True if "alt=sse" in head.query else None
        return BodyObserver.for_response(GeminiEvents(now), response_headers, sse=sse)

    def error_response(
        self, status: int, message: str, *, kind: str = "proxy_error"
    ) -> tuple[list[tuple[str, str]], bytes]:
        body = {"error": {"code": status, "status": status_name(status), "message": message}}
        return [("content-type", "application/json")], json.dumps(body).encode()

    def stream_error_event(self, message: str, *, kind: str = "proxy_error") -> bytes:
        if "timeout" in kind:
            code = 504
        elif kind in ("upstream_error", "shutdown", "overloaded_error", "unavailable"):
            code = 503
        else:
            code = 500
        payload = {"error": {"code": code, "status": status_name(code), "message": message}}
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    def parse_credentials(self, document: Mapping[str, Any]) -> Credentials:
        return gemini_account.parse_credentials(document)

    def refresh_request(self, credentials: Credentials, token_url: str) -> RefreshRequest:
        return gemini_account.refresh_request(credentials, token_url)

    def refresh_result(
        self, status: int, body: bytes, document: Mapping[str, Any], now: float
    ) -> RefreshResult:
        return gemini_account.refresh_result(status, body, document, now)

    def usage_request(
        self, credentials: Credentials, upstreams: Mapping[str, str]
    ) -> PreparedRequest | None:
        return gemini_account.usage_request(credentials, upstreams)

    def parse_usage(self, status: int, body: bytes, now: float) -> QuotaReading | None:
        return gemini_account.parse_usage(status, body, now)


def with_project(body: bytes, project: str, *, add: bool = False, setup: bool = False) -> bytes:
    """``body`` with the account's project in ``project`` (and, in loadCodeAssist,
    ``cloudaicompanionProject`` / ``metadata.duetProject``); the same bytes when none of
    those keys is present or each already names this project. ``add``: put ``project`` in
    a body that lacks it; ``setup``: put ``cloudaicompanionProject`` in a set-up call
    (loadCodeAssist, onboardUser) that lacks it."""
    payload = json_object(body)
    if payload is None:
        return body
    changed = False
    if add and not isinstance(payload.get("project"), str):
        payload["project"] = project
        changed = True
    if setup and not isinstance(payload.get("cloudaicompanionProject"), str):
        payload["cloudaicompanionProject"] = project
        changed = True
    for section, key in ((payload, "project"), (payload, "cloudaicompanionProject")):
        if isinstance(section.get(key), str) and section[key] != project:
            section[key] = project
            changed = True
    metadata = payload.get("metadata")
    duet = metadata.get("duetProject") if isinstance(metadata, dict) else None
    if isinstance(metadata, dict) and isinstance(duet, str) and duet != project:
        metadata["duetProject"] = project
        changed = True
    return compact_json(payload) if changed else body
