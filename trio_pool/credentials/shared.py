"""Multi-host mode: the pool's accounts come from PostgreSQL, the pool directory feeds it.

The pool directory stays the way to add an account: a new or changed file is sealed and
imported into the shared store (once per distinct content, so an old copy of a file on a
restarted host never overwrites a newer rotation). Every host then loads every account
from the store, and reloads an account as soon as its version moves: a NOTIFY wakes this
loop, which otherwise polls every ``sync_interval_s``. Tokens stay in memory on the hosts.
"""

from __future__ import annotations

import logging
from pathlib import Path

import trio

from trio_pool import clock
from trio_pool.config import Config
from trio_pool.credentials.fenced import FencedRefresh
from trio_pool.credentials.refresh import Refresher
from trio_pool.credentials.registry import AccountRegistry, Found, Signature, collect
from trio_pool.errors import CredentialsError, StateError
from trio_pool.providers import PROVIDER_REGISTRY
from trio_pool.state.pg import credentials as stored
from trio_pool.state.pg.listen import Wakeup
from trio_pool.state.pg.sealing import Keyring
from trio_pool.state.pg.store import PgStore

log = logging.getLogger(__name__)

IMPORT_INTERVAL_S = 1.0


class SharedCredentials:
    def __init__(
        self,
        config: Config,
        registry: AccountRegistry,
        store: PgStore,
        keyring: Keyring,
        *,
        fenced: FencedRefresh | None = None,
        refresher: Refresher | None = None,
        wake: Wakeup | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.store = store
        self.keyring = keyring
        self.fenced = fenced
        self.refresher = refresher
        self.wake = wake or Wakeup()
        self.versions: dict[str, int] = {}  # as loaded into the registry
        self._files: dict[str, Signature] = {}  # pool files already looked at
        self.imported = 0

    def file_ns(self, name: str) -> int | None:
        """The account's credential version (what needs-re-login verdicts are about)."""
        return self.versions.get(name)

    async def import_files(self) -> int:
        """Seal and store every new or changed pool file; how many were stored."""
        found = await trio.to_thread.run_sync(collect, self.config.pool_dir, dict(self._files))
        count = 0
        for name, item in found.items():
            result = item.result
            if result is None:
                continue
            if isinstance(result, CredentialsError):
                log.warning(
                    "pool.account.skipped account=%s file=%s reason=%s", name, item.path, result
                )
                self.registry.problems[name] = str(result)
                self._files[name] = item.signature
                continue
            document, _ = result
            version = await self.store.run(
                stored.import_document, self.keyring, name, item.provider, document,
                sha=stored.file_digest(stored.encode(document)), writer=self.store.writer,
                now=clock.now(),
            )  # fmt: skip
            self._files[name] = item.signature
            self.registry.problems.pop(name, None)
            if version is not None:
                count += 1
                log.info("pool.account.imported account=%s version=%d", name, version)
        self.imported += count
        return count

    async def pull(self) -> bool:
        """Load accounts whose stored version moved; True if anything changed."""
        versions = await self.store.run(stored.versions)
        for name, version in versions.items():
            account = self.registry.get(name)
            if account is not None and account.signature == (version, 0, 0):
                # Our own write-back: already in memory. Not reloaded, as reloading
                # credentials clears needs-action (a change of them is the user's fix).
                self.versions[name] = version
        changed = sorted(a for a, v in versions.items() if self.versions.get(a) != v)
        removed = set(self.versions) - set(versions)
        for name in removed:
            self.registry.drop(name)
            del self.versions[name]
        if not changed:
            return bool(removed)
        rows = await self.store.run(stored.read_many, self.keyring, changed)
        for row in rows:
            if isinstance(row, Exception):
                log.error("pool.account.unreadable reason=%s", row)
                continue
            self._adopt(row)
        return True

    def _adopt(self, row: stored.StoredCredential) -> None:
        provider = PROVIDER_REGISTRY[row.provider]
        try:
            credentials = provider.parse_credentials(row.document)
        except CredentialsError as exc:
            self.registry.problems[row.account] = str(exc)
            self.versions[row.account] = row.version
            return
        stem = row.account.split("/", 1)[1]
        path = Path(self.config.pool_dir) / row.provider / f"{stem}.json"
        item = Found(path, row.provider, (row.version, 0, 0), False, (row.document, credentials))
        self.registry.load_one(row.account, item)
        self.versions[row.account] = row.version

    async def start(self) -> None:
        """Before serving: import the pool directory, land pending write-backs, load all."""
        await self.import_files()
        if self.fenced is not None:
            await self.fenced.load_spool()
            await self._flush_pending()
        await self.pull()

    async def _flush_pending(self) -> None:
        if self.fenced is None or not self.fenced.pending:
            return
        for name, outcome in await self.fenced.flush_pending():
            account = self.registry.get(name)
            if account is not None and self.refresher is not None:
                self.refresher.adopt_stored(account, outcome)
            version = getattr(outcome, "version", None)
            if version is not None:
                self.versions[name] = int(version)

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Import and reload until cancelled (a NOTIFY wakes the reload at once)."""
        task_status.started()
        next_import = trio.current_time() + IMPORT_INTERVAL_S
        while True:
            await self.wake.wait(
                min(self.config.state.sync_interval_s, max(0.0, next_import - trio.current_time()))
            )
            importing = trio.current_time() >= next_import
            if importing:
                next_import = trio.current_time() + IMPORT_INTERVAL_S
            try:
                await self._flush_pending()
                await self.pull()
                if importing:
                    await self.import_files()
            except (StateError, CredentialsError) as exc:
                # The store logs the outage once; this is the detail, at debug level.
                log.debug("state.credentials.sync_failed reason=%s", exc)
