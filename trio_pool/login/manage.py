"""``accounts remove | enable | disable | refresh``, working on the local pool directory and
config file, so they need no running proxy.

enable/disable write ``[accounts."provider/name"] disabled = ...`` into config.toml with
tomlkit (comments and layout kept); a running proxy reads that at its next start, and the
CLI also tells a running proxy through its management API when ``admin_token`` is set.
refresh goes through the proxy's own ``Refresher`` with the same host-wide lock in
state.db as a running proxy: a re-read of the file first (someone may have rotated the token
already) and atomic write-back. Without that lock a CLI refresh racing the proxy could spend a
single-use refresh token twice, so it refuses to run when state.db cannot be opened.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import attrs
import tomlkit
import trio

from trio_pool import clock
from trio_pool.accounts.pool import Pool
from trio_pool.config import Config, structure_config
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry
from trio_pool.errors import ConfigError, LoginError, TrioPoolError
from trio_pool.files import write_text_atomic
from trio_pool.login.pooldir import find_account, list_accounts
from trio_pool.state.store import StateStore
from trio_pool.upstream.client import UpstreamClient


def remove_account(config: Config, name: str) -> Path:
    """Delete the account's pool file; a running proxy drops it within two seconds."""
    row = find_account(config, name)
    row.path.unlink()
    return row.path


def set_disabled(config_path: Path, name: str, disabled: bool) -> None:
    """Write ``disabled`` for account ``name`` into the config file (created if missing)."""
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ""
    document = tomlkit.parse(text)
    accounts = document.get("accounts")
    if accounts is None:
        accounts = tomlkit.table(is_super_table=True)
        document["accounts"] = accounts
    entry = accounts.get(name)
    if entry is None:
        entry = tomlkit.table()
        accounts[name] = entry
    entry["disabled"] = disabled
    new_text = tomlkit.dumps(document)
    try:
        structure_config(tomllib.loads(new_text), base_dir=config_path.resolve().parent)
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        raise LoginError(f"{config_path}: not changed, it would not be valid: {exc}") from None
    write_text_atomic(config_path, new_text)


@attrs.frozen
class Refreshed:
    name: str
    ok: bool
    detail: str
    expires_at: float | None = None


async def refresh_accounts(
    config: Config, names: list[str] | None, client: UpstreamClient
) -> list[Refreshed]:
    """Refresh the named accounts (None: every account) now, one at a time."""
    if config.state_url is not None:
        return await refresh_shared(config, names, client)
    if names is None:
        targets = [row.name for row in await trio.to_thread.run_sync(list_accounts, config)]
    else:
        targets = [(await trio.to_thread.run_sync(find_account, config, n)).name for n in names]
    pool = Pool(config.routing)
    registry = AccountRegistry(config, pool)
    await trio.to_thread.run_sync(registry.scan)
    try:
        state = await StateStore.open(config.data_dir)
    except TrioPoolError as exc:
        raise LoginError(
            f"{exc}; refusing to refresh without the host-wide refresh lock "
            "(a running proxy could spend the same single-use token)"
        ) from None
    try:
        refresher = Refresher(config, registry, pool, client, state=state)
        async with trio.open_nursery() as nursery:
            await nursery.start(refresher.serve)
            results = await _refresh_each(refresher, registry, pool, targets)
            nursery.cancel_scope.cancel()  # waits for in-flight refreshes, then returns
    finally:
        await state.aclose()
    return results


async def refresh_shared(
    config: Config, names: list[str] | None, client: UpstreamClient
) -> list[Refreshed]:
    """Multi-host: refresh accounts of the shared store under the hosts' refresh lease (one
    token call per rotation, whoever asks: ``credentials/fenced.py``)."""
    from trio_pool.credentials.fenced import FencedRefresh
    from trio_pool.credentials.shared import SharedCredentials
    from trio_pool.login.shared_store import open_shared, resolve, rows_of

    pool = Pool(config.routing)
    registry = AccountRegistry(config, pool)
    async with open_shared(config) as (store, keyring):
        rows = await rows_of(config, store, keyring)
        targets = (
            [r.name for r in rows] if names is None else [resolve(rows, n).name for n in names]
        )
        fenced = FencedRefresh(store, keyring, config.state, data_dir=config.data_dir)
        refresher = Refresher(config, registry, pool, client, state=None, fenced=fenced)
        shared = SharedCredentials(config, registry, store, keyring, fenced=fenced)
        await shared.pull()
        async with trio.open_nursery() as nursery:
            await nursery.start(refresher.serve)
            results = await _refresh_each(refresher, registry, pool, targets)
            nursery.cancel_scope.cancel()
    return results


async def _refresh_each(
    refresher: Refresher, registry: AccountRegistry, pool: Pool, targets: list[str]
) -> list[Refreshed]:
    results = []
    for name in targets:
        account = registry.get(name)
        if account is None:
            results.append(Refreshed(name, False, registry.problems.get(name, "not loadable")))
            continue
        if account.credentials.refresh_token is None:
            results.append(Refreshed(name, False, "no refresh token in the file: log in again"))
            continue
        ok = await refresher.refresh(account, reason="manual", stale=account.credentials)
        if ok:
            results.append(Refreshed(name, True, "refreshed", account.credentials.expires_at))
            continue
        views = {view.name: view for view in pool.accounts(clock.now())}
        view = views.get(name)
        if view is not None and view.state == "needs_relogin":
            detail = f"{view.state_reason}: log in again with `trio-pool accounts login {account.provider} --name {name.split('/', 1)[1]}`"
        else:
            detail = "the token endpoint failed (transient); see the log line above and retry"
        results.append(Refreshed(name, False, detail))
    return results
