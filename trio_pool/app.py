"""Wiring: the root nursery with the server, the pool reloader and shutdown on signals."""

from __future__ import annotations

import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager
from functools import partial

import attrs
import trio

from trio_pool import clock, front
from trio_pool.accounts.pool import Pool
from trio_pool.auth.directory import Directory
from trio_pool.backend import open_backend
from trio_pool.config import Config, is_loopback, local_url, non_loopback_problem
from trio_pool.credentials.gemini_setup import serve_gemini_setup
from trio_pool.credentials.polls import serve_usage_polls
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.errors import ConfigError, StateError
from trio_pool.providers import PROVIDER_REGISTRY, guess_provider
from trio_pool.providers.base import PROVIDERS
from trio_pool.server.connection import ServerLimits
from trio_pool.server.fds import connection_cap, raise_fd_limit
from trio_pool.server.messages import RequestHead
from trio_pool.server.server import Shutdown, serve_http
from trio_pool.services import Services, make_services
from trio_pool.state.store import StateStore
from trio_pool.state.sync import SyncStore, serve_state_sync
from trio_pool.upstream.client import Timeouts, UpstreamClient
from trio_pool.usage.burn import BurnHistory
from trio_pool.usage.store import Ledger, LedgerSink

log = logging.getLogger(__name__)

# Multi-host: a change of ours is written within this (pins must beat the next turn).
MULTI_HOST_POLL_S = 0.1


@attrs.define(eq=False)
class Running:
    """A started proxy: what tests, demo and selftest need to reach it."""

    config: Config
    services: Services
    addresses: list[tuple[str, int]]
    shutdown: Shutdown

    @property
    def base_url(self) -> str:
        host, port = self.addresses[0][:2]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{port}"


def _error_body(
    status: int, message: str, head: RequestHead | None
) -> tuple[list[tuple[str, str]], bytes]:
    """Server-level refusals (400, 408, 413, 431) in the provider's shape when the path is known."""
    name = guess_provider(head) if head is not None else "codex"
    return PROVIDER_REGISTRY[name].error_response(status, message, kind="invalid_request_error")


async def serve_proxy(
    config: Config,
    *,
    client: UpstreamClient | None = None,
    task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the proxy until ``running.shutdown.begin()`` is called and in-flight work drained.

    Started with ``running = await nursery.start(serve_proxy, config)`` (tests, demo,
    selftest and ``serve`` all do this).
    """
    pool = Pool(config.routing)
    registry = AccountRegistry(config, pool)
    # Where shared state lives (design.md §3.5; multi-host: backend.py).
    backend = await open_backend(config)
    state = backend.local
    try:
        if not backend.multi_host:
            await trio.to_thread.run_sync(registry.scan)
            if not registry.accounts:
                log.warning(
                    "pool.empty pool_dir=%s hint='copy a CLI login into "
                    "pool/<codex|claude|gemini>/NAME.json or run: trio-pool accounts import "
                    "claude' (files added later are picked up)",
                    config.pool_dir,
                )
        directory = Directory(
            backend.auth_store,
            friend_code=config.friend_code,
            signups_per_hour=config.join.signups_per_hour,
            data_dir=config.data_dir,
            queries=backend.auth_queries,
        )
        # Cannot read the users: not ready, every request refused until it can (fail
        # closed). Multi-host: refuse to start instead (the engine was just reachable).
        await directory.start()
        if backend.multi_host and not directory.ready:
            raise StateError("cannot read the users from the shared state (see the log)")
        if not is_loopback(config.listen_host) and not directory.shared:
            raise ConfigError([non_loopback_problem(config.listen_host)])
    except BaseException:
        await backend.aclose()
        raise

    def file_ns(name: str) -> int | None:
        account = registry.get(name)
        return None if account is None else account.signature[0]

    upstream = client or UpstreamClient(
        Timeouts(
            connect_s=config.upstream_connect_timeout_s,
            first_byte_s=config.upstream_first_byte_timeout_s,
            idle_s=config.upstream_idle_timeout_s,
        )
    )
    shutdown = Shutdown()
    ledger_target: StateStore | LedgerSink | None = backend.sink or state
    ledger = (
        Ledger(retention_days=config.ledger_retention_days)
        if config.ledger and ledger_target is not None
        else None
    )
    fenced = shared = None
    if backend.shared is not None and backend.keyring is not None:
        # Multi-host only: imported here to keep PostgreSQL off a single host (backend.py).
        from trio_pool.credentials.fenced import FencedRefresh
        from trio_pool.credentials.shared import SharedCredentials

        fenced = FencedRefresh(
            backend.shared,
            backend.keyring,
            config.state,
            data_dir=config.data_dir,
            wake=backend.listener.leases if backend.listener else None,
        )
    services = make_services(
        config,
        pool,
        registry,
        upstream,
        shutdown,
        state=state,
        ledger=ledger,
        directory=directory,
        fenced=fenced,
        history=backend.shared or state,
        engine=backend.describe,
    )
    limits = ServerLimits(
        max_body_bytes=config.max_body_bytes,
        head_timeout_s=config.head_timeout_s,
        keepalive_idle_s=config.keepalive_idle_s,
        write_timeout_s=config.upstream_idle_timeout_s,
        max_connections=connection_cap(raise_fd_limit(), config.max_connections),
    )
    refresher = services.refresher
    if backend.shared is not None and backend.keyring is not None:
        shared = SharedCredentials(
            config,
            registry,
            backend.shared,
            backend.keyring,
            fenced=fenced,
            refresher=refresher,
            wake=backend.listener.credentials if backend.listener else None,
        )
        try:
            await shared.start()
        except BaseException:
            await backend.aclose()
            raise
    try:
        async with trio.open_nursery() as background:
            # First in, last out: cancelling it waits for the refreshes in flight (their new
            # tokens must reach the files, or the shared store) while the state store and
            # the upstream client still work.
            await background.start(refresher.serve)
            if backend.listener is not None:
                await background.start(backend.listener.serve)
            if backend.heartbeat is not None:
                await background.start(backend.heartbeat.serve)
            sync_store: SyncStore | None = backend.shared or state
            if sync_store is not None:
                # Loaded before serving (a restart keeps cooldowns); synced until the
                # server has drained, then a last write.
                sync = partial(serve_state_sync, sync_store, pool, file_ns=file_ns)
                if backend.listener is not None:
                    sync = partial(
                        sync,
                        wake=backend.listener.sync,
                        poll_s=MULTI_HOST_POLL_S,
                        interval_s=config.state.sync_interval_s,
                    )
                await background.start(sync)
            if ledger is not None and ledger_target is not None:
                # Cancelled with the sync, after the server drained: a last flush then.
                await background.start(ledger.serve, ledger_target)
            try:
                async with trio.open_nursery() as nursery:
                    addresses = await nursery.start(
                        _serve, services, config.listen_host, config.listen_port, limits
                    )
                    services.self_call.url = local_url(*addresses[0][:2])
                    # Background services stop as soon as shutdown begins; the server drains.
                    if shared is not None:
                        nursery.start_soon(_until_shutdown, shutdown, shared.serve)
                    else:
                        nursery.start_soon(_until_shutdown, shutdown, registry.serve_reload)
                    nursery.start_soon(_until_shutdown, shutdown, directory.serve)
                    sampler = partial(serve_burn_sampler, pool, services.burn)
                    nursery.start_soon(_until_shutdown, shutdown, sampler)
                    polls = partial(
                        serve_usage_polls,
                        registry,
                        pool,
                        refresher,
                        upstream,
                        services.upstreams,
                    )
                    nursery.start_soon(_until_shutdown, shutdown, polls)
                    setups = partial(
                        serve_gemini_setup,
                        registry,
                        pool,
                        refresher,
                        upstream,
                        services.upstreams,
                    )
                    nursery.start_soon(_until_shutdown, shutdown, setups)
                    task_status.started(Running(config, services, addresses, shutdown))
            finally:
                background.cancel_scope.cancel()
    finally:
        await backend.aclose()
        if client is None:
            await upstream.aclose()


SERVICE_RESTART_S = 5.0
SAMPLE_EVERY_S = 60.0


async def serve_burn_sampler(
    pool: Pool,
    history: BurnHistory,
    *,
    interval_s: float = SAMPLE_EVERY_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Sample each provider's pooled window use every ``interval_s``, so the Overview's
    burn rate has a history even when nobody has the page open."""
    task_status.started()
    while True:
        now = clock.now()
        for provider in PROVIDERS:
            history.observe(pool.pool_usage(provider, now), now)
        await trio.sleep(interval_s)


async def _until_shutdown(shutdown: Shutdown, service: Callable[[], Awaitable[None]]) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_restarting, service)
        await shutdown.requested.wait()
        nursery.cancel_scope.cancel()


async def _restarting(service: Callable[[], Awaitable[None]]) -> None:
    """Run a background service for ever: a crash (a bug, an error nobody expected) is
    logged and the service starts again; it never takes the proxy down with it."""
    name = getattr(service, "__qualname__", None) or getattr(
        getattr(service, "func", None), "__qualname__", repr(service)
    )
    while True:
        try:
            await service()
            return
        except Exception:
            log.exception("app.service.crashed service=%s restart_in_s=%s", name, SERVICE_RESTART_S)
        await trio.sleep(SERVICE_RESTART_S)


async def _serve(
    services: Services,
    host: str,
    port: int,
    limits: ServerLimits,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_http(
        partial(front.handle, services),
        host=host,
        port=port,
        limits=limits,
        shutdown=services.shutdown,
        error_body=_error_body,
        task_status=task_status,
    )


def shutdown_signals() -> AbstractContextManager[AsyncIterator[int]]:
    """SIGINT and SIGTERM as a stream; open it before serving, so that a signal that arrives
    while the proxy starts is a graceful shutdown, not the default (immediate) death."""
    return trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)


async def wait_for_shutdown_signal(signals: AsyncIterator[int], running: Running) -> None:
    """Wait for the first signal, then begin the graceful shutdown."""
    async for signum in signals:
        log.info(
            "app.shutdown.begin signal=%s grace_s=%s",
            signal.Signals(signum).name,
            running.config.shutdown_grace_s,
        )
        break
    running.shutdown.begin(running.config.shutdown_grace_s)
