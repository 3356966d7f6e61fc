"""``accounts list | remove | refresh`` in multi-host mode: the accounts are the rows of the
shared PostgreSQL, not this host's pool directory (which only feeds it).

``remove`` leaves a tombstone (``state/pg/credentials.py``): every host drops the account
within a second, and the same pool file, wherever it still lies, is not imported again. It
also deletes this host's copy of the file. ``refresh`` runs the proxy's own refresher on the
fenced path, under the same lease as the running hosts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

from trio_pool import clock
from trio_pool.config import Config
from trio_pool.errors import CredentialsError, LoginError
from trio_pool.login.pooldir import AccountRow, email_of, split_name
from trio_pool.logs import mask
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.providers.base import PROVIDERS
from trio_pool.state.pg import credentials as stored
from trio_pool.state.pg.sealing import Keyring
from trio_pool.state.pg.store import PgStore


@asynccontextmanager
async def open_shared(config: Config) -> AsyncIterator[tuple[PgStore, Keyring]]:
    """The shared store and the key ring (ConfigError without the key, StateError when the
    engine cannot be reached)."""
    assert config.state_url is not None
    keyring = Keyring.from_env(config.state.key_env)
    store = await PgStore.open(config.state_url, config.state)
    try:
        yield store, keyring
    finally:
        await store.aclose()


def _pool_path(config: Config, name: str) -> Path:
    provider, _, stem = name.partition("/")
    return config.pool_dir / provider / f"{stem}.json"


def _row(config: Config, found: stored.StoredCredential) -> AccountRow:
    path = _pool_path(config, found.account)
    disabled = config.account_settings(found.account).disabled
    try:
        credentials = PROVIDER_REGISTRY[found.provider].parse_credentials(found.document)
    except CredentialsError as exc:
        return AccountRow(found.account, found.provider, path, problem=str(exc))
    return AccountRow(
        found.account,
        found.provider,
        path,
        email=email_of(found.provider, found.document, credentials),
        plan=credentials.plan,
        expires_at=credentials.expires_at,
        disabled=disabled,
        access=mask(credentials.access_token),
        refresh=mask(credentials.refresh_token) if credentials.refresh_token else "",
        version=found.version,
    )


async def shared_rows(config: Config) -> list[AccountRow]:
    """Every account of the shared store, as ``accounts list`` shows it (tokens masked)."""
    async with open_shared(config) as (store, keyring):
        return await rows_of(config, store, keyring)


async def rows_of(config: Config, store: PgStore, keyring: Keyring) -> list[AccountRow]:
    found = await store.run(stored.listing, keyring)
    rows = []
    for item in found:
        if isinstance(item, Exception):
            # A row that will not open (another key): named by the error, never shown.
            name = str(item).split(":", 1)[0]
            provider = name.split("/", 1)[0]
            if provider in PROVIDERS:
                rows.append(AccountRow(name, provider, _pool_path(config, name), problem=str(item)))
            continue
        rows.append(_row(config, item))
    return sorted(rows, key=lambda row: (PROVIDERS.index(row.provider), row.name))


def resolve(rows: list[AccountRow], name: str) -> AccountRow:
    """``provider/name``, or ``name`` when only one provider has it (as ``find_account``)."""
    provider, stem = split_name(name)
    matches = [
        row
        for row in rows
        if row.name.split("/", 1)[1] == stem and (provider is None or row.provider == provider)
    ]
    if not matches:
        raise LoginError(f"no account {name!r} in the shared store (see: trio-pool accounts list)")
    if len(matches) > 1:
        names = ", ".join(row.name for row in matches)
        raise LoginError(f"{name!r} is ambiguous ({names}): name the provider too")
    return matches[0]


@attrs.frozen
class Removed:
    name: str
    file: Path | None  # this host's pool file, deleted too


async def remove_shared(config: Config, name: str) -> Removed:
    """Take ``name`` out of the pool on every host (and delete this host's pool file)."""
    async with open_shared(config) as (store, keyring):
        row = resolve(await rows_of(config, store, keyring), name)
        done = await store.run(stored.remove, row.name, writer=store.writer, now=clock.now())
    if not done:
        raise LoginError(f"{row.name} was removed meanwhile")
    path = _pool_path(config, row.name)
    try:
        await trio.Path(path).unlink()
    except FileNotFoundError:
        return Removed(row.name, None)
    except OSError as exc:
        raise LoginError(
            f"{row.name} is out of the pool, but {path} could not be deleted ({exc.strerror})"
        ) from None
    return Removed(row.name, path)
