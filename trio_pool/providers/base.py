"""What every provider module (codex, claude, gemini) provides, and the values they share.

Everything here is pure: no trio, no sockets, no files, no clock. Times are unix seconds
(float) passed in as ``now``; the shell derives them from trio's clock (see ``clock.py``), so
MockClock drives them in tests.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import attrs

from trio_pool.server.messages import Headers, RequestHead

ProviderName = Literal["codex", "claude", "gemini"]
PROVIDERS: tuple[ProviderName, ...] = ("codex", "claude", "gemini")


# -- quota ----------------------------------------------------------------------------------


@attrs.frozen
class QuotaWindow:
    """One rate-limit window of one account, as the provider last reported it."""

    name: str  # "5h", "7d", "weekly", a Gemini model id, ...
    used: float  # fraction 0..1 of the window used (providers send 0-1 or 0-100: normalise)
    window_s: float | None = None  # length of the window, when known
    resets_at: float | None = None  # unix seconds, when known
    # None: the window limits the whole account. Else it limits only requests for the models
    # it matches (see scope_matches): Gemini's per-model buckets, Claude's weekly Opus and
    # Sonnet limits, Codex's extra limit families. A full model window stops that model only.
    scope: str | None = None


# A model-scoped 429 whose model the upstream did not name: the pool puts the model of the
# request that got it (Lease.model) in its place.
REQUEST_MODEL = "@request"
_MODEL_WORDS = re.compile(r"[^a-z0-9.]+")


def normal_model(model: str) -> str:
    """A model name as scopes compare it: lower case, without the ``models/`` prefix."""
    model = model.strip().lower()
    return model.removeprefix("models/")


def scope_matches(scope: str, model: str | None) -> bool:
    """Whether a window of ``scope`` limits requests for ``model``.

    A scope is either an exact model id ("gemini-2.5-pro", which does not match
    "gemini-2.5-pro-lite") or one word of the model's name ("opus" matches
    "claude-opus-4-1"). A request whose model is unknown is limited by no model window.
    """
    if model is None:
        return False
    scope, model = normal_model(scope), normal_model(model)
    return scope == model or scope in _MODEL_WORDS.split(model)


@attrs.frozen
class QuotaReading:
    """What one response (headers, 429 body, stream event or usage poll) said about quota."""

    windows: tuple[QuotaWindow, ...] = ()
    plan: str | None = None
    # The provider said outright that the account is out of quota (Claude
    # `unified-status: rejected`, Codex window at 100 %), whatever the windows say.
    exhausted: bool = False
    # When the account can be used again, if the provider said so (unix seconds).
    resets_at: float | None = None


# -- outcomes ---------------------------------------------------------------------------------


class OutcomeKind(enum.Enum):
    OK = "ok"  # 2xx: relay it
    QUOTA = "quota"  # 429 with a quota signal: cool down until the reset, try the next account
    THROTTLED = "throttled"  # request-scoped 429 / 529 / overloaded: short backoff, next account
    AUTH = "auth"  # the token is the problem (401, Claude 403 "revoked"): refresh once, retry
    # A 403 (or 402) that a new token would not fix: Cloudflare aside (TRANSIENT), the
    # upstream refuses this account. A minute off, next account, and no refresh: each refresh
    # spends a single-use refresh token.
    FORBIDDEN = "forbidden"
    # The account's plan does not offer what was asked (Codex "The 'X' model is not supported
    # when using Codex with a ChatGPT account"): try an account on another plan, if there is
    # one, else pass the answer on. Nothing against the account.
    WRONG_PLAN = "wrong_plan"
    TRANSIENT = "transient"  # 5xx, connect error, timeout before the response: next account
    CLIENT_ERROR = "client_error"  # any other status: relay it unchanged (not the account's fault)
    # The account cannot serve until its owner does something (accept terms, open a
    # validation link, set a project, change plan): out of rotation, next account.
    ACCOUNT_ACTION = "account_action"

    @property
    def fails_over(self) -> bool:
        """The account's fault: the same request may go to another account (design.md §3.2)."""
        return self in _FAILS_OVER


_FAILS_OVER = frozenset(
    {
        OutcomeKind.QUOTA,
        OutcomeKind.THROTTLED,
        OutcomeKind.AUTH,
        OutcomeKind.FORBIDDEN,
        OutcomeKind.TRANSIENT,
        OutcomeKind.ACCOUNT_ACTION,
    }
)


@attrs.frozen
class AccountAction:
    """What the owner of an account must do before it can serve again.

    ``kind`` is a stable word for programs (``ineligible``, ``project_required``,
    ``validation_required``, ``org_disabled``, ``no_codex_plan``); ``message`` is the
    upstream's own explanation where it gave one; ``link`` a page the user must open.
    ``since_at`` (unix seconds) is stamped by the pool when it applies the action.
    """

    kind: str
    message: str
    link: str | None = None
    since_at: float = 0.0


@attrs.frozen
class Outcome:
    kind: OutcomeKind
    status: int | None = None  # upstream status; None for connect errors / timeouts
    reason: str = ""  # short human text for messages and status ("usage_limit_reached", ...)
    quota: QuotaReading | None = None
    retry_at: float | None = None  # unix seconds: when the account may be used again
    action: AccountAction | None = None  # with ACCOUNT_ACTION: what the user must do
    # With QUOTA: the quota of one model ran out, not the account's. Only that model is
    # cooled on this account, until ``retry_at`` (a scope as QuotaWindow.scope, or
    # REQUEST_MODEL).
    scope: str | None = None


# -- usage ------------------------------------------------------------------------------------


@attrs.frozen
class TokenUsage:
    input: int = 0  # all input tokens, cached ones included
    cached: int = 0
    output: int = 0  # all output tokens, reasoning included
    reasoning: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            self.input + other.input,
            self.cached + other.cached,
            self.output + other.output,
            self.reasoning + other.reasoning,
        )


# -- credentials ------------------------------------------------------------------------------


@attrs.frozen
class Credentials:
    """The usable part of one pool file. Secrets are kept out of repr."""

    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(repr=False, default=None)
    expires_at: float | None = None  # unix seconds; None when unknown
    account_id: str | None = None  # Codex ChatGPT-Account-ID
    email: str | None = None
    plan: str | None = None
    project: str | None = None  # Gemini cloudaicompanionProject, when the file names one


@attrs.frozen
class RefreshRequest:
    """An HTTP call to a token endpoint, built by the provider, sent by the shell."""

    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = attrs.field(repr=False)


class RefreshVerdict(enum.Enum):
    OK = "ok"
    PERMANENT = "permanent"  # invalid_grant, refresh_token_reused, ...: needs re-login
    TRANSIENT = "transient"  # 5xx, 429, network: retry later with backoff


@attrs.frozen
class RefreshResult:
    verdict: RefreshVerdict
    # The provider's file document with the new tokens merged in (unknown fields kept).
    document: Mapping[str, Any] | None = attrs.field(repr=False, default=None)
    reason: str = ""
    retry_after_s: float | None = None


# -- requests -----------------------------------------------------------------------------------


class RouteKind(enum.Enum):
    PROXY = "proxy"  # forward with a pooled account
    POOL_USAGE = "pool_usage"  # answered locally from the pool's numbers (Codex wham/usage)
    WEBSOCKET = "websocket"  # WebSocket upgrade to forward with a pooled account
    # ``GET /v1/models`` of a client that is not Codex CLI: answered by the proxy with what
    # the pool can serve, in the client's own list format (translation.md §5).
    MODEL_LIST = "model_list"


@attrs.frozen
class Route:
    """Where a request that a provider accepted goes."""

    provider: ProviderName
    kind: RouteKind
    upstream_url: str  # absolute URL, query kept
    # A model call (a turn). Side calls (model lists, plugin lists, Code Assist set-up) still
    # need an account's credentials but are not use of its quota: they do not count as
    # requests, do not pin a conversation and do not keep the account from usage polls.
    inference: bool = True
    # A side call that must reach the account its conversation key is pinned to (polling a
    # Gemini operation started by one account).
    follows_pin: bool = False
    # Answered by the proxy itself with this refusal (403), never forwarded.
    refusal: str | None = None
    # The API the client speaks when the request's model may send it to another provider's
    # accounts ("messages", "responses", "chat"; translation.md §0.5): the proxy decides by
    # the body's model. None: always this provider, never translated.
    client_format: str | None = None


@attrs.frozen
class ConversationKey:
    value: str
    # Hard pins (Codex x-codex-turn-state, WebSocket sessions) never move while the account
    # is usable; soft pins may move when another account is clearly better.
    hard: bool = False


@attrs.frozen
class PreparedRequest:
    """The request as it goes upstream for one chosen account."""

    method: str
    url: str
    headers: Headers
    body: bytes = attrs.field(repr=False)


@attrs.frozen
class StreamEvent:
    """What a stream observer learned from one chunk of a response body."""

    usage: TokenUsage | None = None  # cumulative usage seen so far, when it changed
    quota: QuotaReading | None = None  # a quota reading carried in the stream
    failure: Outcome | None = None  # the stream reported an error in-band
    complete: bool = False  # the terminal event of a successful response was seen
    # A key that later requests (Route.follows_pin) must follow to this same account: the
    # name of a Gemini long-running operation, which only its own account can poll.
    pin: str | None = None


class StreamObserver(Protocol):
    """Incremental parser of one response body (SSE or JSON); fed each upstream read."""

    def feed(self, data: bytes) -> StreamEvent | None: ...

    def finish(self) -> StreamEvent | None: ...


class ErrorShape(Protocol):
    """How a client's API spells the errors the proxy answers itself: every Provider, and
    the shapes of clients no provider serves natively (Chat Completions)."""

    def error_response(
        self, status: int, message: str, *, kind: str = "proxy_error"
    ) -> tuple[list[tuple[str, str]], bytes]: ...

    def stream_error_event(self, message: str, *, kind: str = "proxy_error") -> bytes: ...


class Provider(Protocol):
    """One provider's protocol knowledge. Pure: every method is a function of its arguments."""

    name: ProviderName

    def route(self, head: RequestHead, upstreams: Mapping[str, str]) -> Route | None:
        """The route for this request, or None when the path is not this provider's.

        ``upstreams`` is the provider's config section (``upstream``, ``backend``, ...).
        """
        ...

    def conversation_key(self, head: RequestHead, body: bytes | None) -> ConversationKey | None: ...

    def prepare(
        self,
        route: Route,
        head: RequestHead,
        body: bytes,
        credentials: Credentials,
        *,
        fast: bool = False,
    ) -> PreparedRequest:
        """Replace the client's credentials by the account's; rewrite the body if needed.

        ``fast``: the pool chose this account's fast tier for the request (Codex
        ``fast_mode``); a provider without one ignores it."""
        ...

    def read_quota(self, headers: Headers, now: float) -> QuotaReading | None:
        """The quota reading in a response head, if any."""
        ...

    def classify(self, status: int, headers: Headers, body: bytes, now: float) -> Outcome:
        """What an upstream answer (head + body of a non-2xx) means for the account."""
        ...

    def observer(self, head: RequestHead, response_headers: Headers, now: float) -> StreamObserver:
        """A fresh parser for one response body."""
        ...

    def error_response(
        self, status: int, message: str, *, kind: str = "proxy_error"
    ) -> tuple[list[tuple[str, str]], bytes]:
        """An error the proxy itself answers, in the provider's own JSON shape."""
        ...

    def stream_error_event(self, message: str, *, kind: str = "proxy_error") -> bytes:
        """The provider's in-stream terminal error event (SSE bytes)."""
        ...

    def parse_credentials(self, document: Mapping[str, Any]) -> Credentials:
        """The usable part of a pool file; raises CredentialsError naming what is missing."""
        ...

    def refresh_request(self, credentials: Credentials, token_url: str) -> RefreshRequest: ...

    def usage_request(
        self, credentials: Credentials, upstreams: Mapping[str, str]
    ) -> PreparedRequest | None:
        """The provider's usage-poll call for this account (None if it has none)."""
        ...

    def parse_usage(self, status: int, body: bytes, now: float) -> QuotaReading | None:
        """The quota reading in a usage-poll answer (None when it carried none)."""
        ...

    def refresh_result(
        self, status: int, body: bytes, document: Mapping[str, Any], now: float
    ) -> RefreshResult:
        """Merge a token-endpoint answer into the file document, or say why it failed."""
        ...
