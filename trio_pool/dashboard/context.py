"""What the dashboard uses of the running proxy: read-only Protocols that
``services.Services`` fits, so the dashboard never imports the request path, and its tests
can hand it a small stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from trio_pool.accounts.pool import Pool
from trio_pool.auth.directory import Directory
from trio_pool.config import Config
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.server.server import Shutdown
from trio_pool.services import SelfCall
from trio_pool.upstream.client import UpstreamClient
from trio_pool.usage.burn import BurnHistory
from trio_pool.usage.live import LiveFeed
from trio_pool.usage.queries import LedgerReader


class HasProblems(Protocol):
    @property
    def problems(self) -> Mapping[str, str]: ...


class DataServices(Protocol):
    """What the data API reads (``dashboard.data_api``)."""

    @property
    def pool(self) -> Pool: ...
    @property
    def registry(self) -> HasProblems: ...
    @property
    def client(self) -> UpstreamClient: ...
    @property
    def shutdown(self) -> Shutdown: ...
    @property
    def history(self) -> LedgerReader | None: ...  # the ledger: state.db, or PostgreSQL
    @property
    def live(self) -> LiveFeed: ...
    @property
    def burn(self) -> BurnHistory: ...
    @property
    def self_call(self) -> SelfCall: ...
    @property
    def directory(self) -> Directory: ...


class DashboardServices(DataServices, Protocol):
    """Everything the dashboard uses: the data API's, plus the config, the pool's files
    and the refresher (sign-in, users and the accounts API)."""

    @property
    def config(self) -> Config: ...
    @property
    def registry(self) -> AccountRegistry: ...
    @property
    def refresher(self) -> Refresher: ...
