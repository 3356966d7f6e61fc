"""The services of one running trio-pool, as one frozen record built once by ``app``.

Every part of the request path (``front``, ``proxy/``, ``dashboard/``) is handed this
record (the dashboard sees it through the narrower ``dashboard.context`` Protocols) rather
than reaching into the object that runs requests: capabilities in, no import of the host.
The references are fixed for the life of the process; what they point to changes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import attrs

from trio_pool.accounts.pool import Pool
from trio_pool.accounts.queue_budget import QueueBudget
from trio_pool.auth.directory import Directory
from trio_pool.config import Config
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import ProviderName
from trio_pool.server.server import Shutdown
from trio_pool.state.store import StateStore
from trio_pool.upstream.client import UpstreamClient
from trio_pool.usage.burn import BurnHistory
from trio_pool.usage.events import RequestEvents
from trio_pool.usage.live import LiveFeed
from trio_pool.usage.metrics import Metrics
from trio_pool.usage.queries import LedgerReader
from trio_pool.usage.store import Ledger

if TYPE_CHECKING:  # multi-host only: kept off the single-host import path (backend.py)
    from trio_pool.credentials.fenced import FencedRefresh


@attrs.define(eq=False)
class SelfCall:
    """How the proxy calls itself (the dashboard's Try it): the secret, and its own address
    (set once, when the listener is bound)."""

    token: str = attrs.field(factory=lambda: secrets.token_urlsafe(32), repr=False)
    url: str = ""


def provider_endpoints(config: Config) -> dict[ProviderName, Mapping[str, str]]:
    """Each provider's URLs (``upstream``, ``backend``, ...) as the providers read them."""
    return {name: attrs.asdict(getattr(config, name)) for name in PROVIDER_REGISTRY}


@attrs.frozen(eq=False)
class Services:
    config: Config
    pool: Pool
    registry: AccountRegistry
    refresher: Refresher
    client: UpstreamClient
    shutdown: Shutdown
    directory: Directory
    events: RequestEvents  # the fan-out to live, metrics and ledger
    # None: no state db (single host, the proxy runs alone), or multi-host mode.
    state: StateStore | None = None
    # Where the dashboard reads the ledger: state.db, or PostgreSQL (every host's rows);
    # None: no history to show.
    history: LedgerReader | None = None
    # What /healthz says about the state engine (``backend.Backend.describe``).
    engine: Callable[[], dict[str, Any]] | None = None
    burn: BurnHistory = attrs.field(factory=BurnHistory)  # the Overview's burn rates
    self_call: SelfCall = attrs.field(factory=SelfCall)
    queue: QueueBudget = attrs.field()  # requests waiting for an account, over all of them
    # The providers' endpoints, computed once from the typed config (never per request).
    upstreams: Mapping[ProviderName, Mapping[str, str]] = attrs.field()

    @queue.default
    def _queue(self) -> QueueBudget:
        return QueueBudget(self.config.routing.max_queued, self.config.routing.max_queued_bytes)

    @upstreams.default
    def _upstreams(self) -> Mapping[ProviderName, Mapping[str, str]]:
        return provider_endpoints(self.config)

    @property
    def live(self) -> LiveFeed:
        return self.events.live

    @property
    def metrics(self) -> Metrics:
        return self.events.metrics

    @property
    def ledger(self) -> Ledger | None:
        return self.events.ledger


def make_services(
    config: Config,
    pool: Pool,
    registry: AccountRegistry,
    client: UpstreamClient,
    shutdown: Shutdown,
    *,
    state: StateStore | None = None,
    ledger: Ledger | None = None,
    directory: Directory | None = None,
    fenced: FencedRefresh | None = None,
    history: LedgerReader | None = None,
    engine: Callable[[], dict[str, Any]] | None = None,
) -> Services:
    """The record, with a fresh refresher, live feed and counters (tests build it too).

    Multi-host mode (``app`` from ``backend.open_backend``): ``fenced`` is the refresh
    through the PostgreSQL lease, ``history`` the shared ledger; ``history`` defaults to
    ``state``."""
    metrics = Metrics()
    refresher = Refresher(
        config, registry, pool, client, state=state, metrics=metrics, fenced=fenced
    )
    return Services(
        config,
        pool,
        registry,
        refresher,
        client,
        shutdown,
        directory or Directory(None, friend_code=config.friend_code),
        RequestEvents(LiveFeed(), metrics, ledger),
        state,
        history if history is not None else state,
        engine,
    )
