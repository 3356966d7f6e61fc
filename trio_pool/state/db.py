"""data/state.db: the schema, its migrations and the row <-> record conversion.

SQLite in WAL mode, shared by every trio-pool process of the host. Blocking on purpose: the
shell runs these functions in one worker thread at a time (see ``store.StateStore``). Times
are unix seconds. No column holds a token (design.md §2.2).
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trio_pool.accounts.model import AccountAction, AccountRecord, ObservedWindow
from trio_pool.providers.base import PROVIDERS, ProviderName, QuotaWindow
from trio_pool.state.merge import Stamps, StoredAccount

BUSY_TIMEOUT_MS = 5000

# Each entry upgrades the schema by one version; never edit a released entry, append one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO meta VALUES ('seq', 0);
    CREATE TABLE accounts (
        name TEXT PRIMARY KEY,
        provider TEXT NOT NULL,
        windows TEXT NOT NULL DEFAULT '[]',
        cooldown_until REAL,
        cooldown_reason TEXT NOT NULL DEFAULT '',
        cooldown_level INTEGER NOT NULL DEFAULT 0,
        cooldown_at REAL NOT NULL DEFAULT 0,
        backoff_until REAL,
        backoff_reason TEXT NOT NULL DEFAULT '',
        backoff_level INTEGER NOT NULL DEFAULT 0,
        backoff_at REAL NOT NULL DEFAULT 0,
        penalty REAL NOT NULL DEFAULT 0,
        penalty_at REAL NOT NULL DEFAULT 0,
        relogin TEXT,
        relogin_at REAL NOT NULL DEFAULT 0,
        relogin_file_ns INTEGER,
        last_used REAL,
        writer TEXT NOT NULL,
        updated_at REAL NOT NULL,
        version INTEGER NOT NULL
    );
    CREATE INDEX accounts_by_version ON accounts (version);
    CREATE TABLE counters (
        account TEXT NOT NULL,
        day INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        input INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        output INTEGER NOT NULL DEFAULT 0,
        reasoning INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (account, day)
    );
    CREATE TABLE pins (
        provider TEXT NOT NULL,
        key TEXT NOT NULL,
        account TEXT NOT NULL,
        last_used REAL NOT NULL,
        version INTEGER NOT NULL,
        PRIMARY KEY (provider, key)
    );
    CREATE INDEX pins_by_version ON pins (version);
    CREATE TABLE refresh_locks (
        account TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        acquired_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    """,
    # 2: the usage ledger (trio_pool/usage): one row per proxied request, hourly rollups.
    """
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        user TEXT,
        provider TEXT NOT NULL,
        account TEXT,
        model TEXT,
        conversation TEXT,
        status INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        failures TEXT NOT NULL DEFAULT '[]',
        ttfb_ms REAL,
        duration_ms REAL NOT NULL,
        input INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        output INTEGER NOT NULL DEFAULT 0,
        reasoning INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX usage_by_at ON usage (at);
    CREATE TABLE usage_hourly (
        provider TEXT NOT NULL,
        account TEXT NOT NULL,
        model TEXT NOT NULL,
        hour INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        input INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        output INTEGER NOT NULL DEFAULT 0,
        reasoning INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (provider, account, model, hour)
    );
    CREATE INDEX usage_hourly_by_hour ON usage_hourly (hour);
    """,
    # 3: shared mode (trio_pool/auth): users, their pool keys (sha256 only), settings (the
    # admin password's scrypt hash, the session-signing secret); rollups gain the user and
    # the failed attempts that failover absorbed, rebuilt from the rows.
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL DEFAULT 'user',
        created_at REAL NOT NULL,
        rpm INTEGER,
        streams INTEGER,
        share_pct REAL
    );
    CREATE TABLE pool_keys (
        id TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        hash TEXT NOT NULL UNIQUE,
        prefix TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_used_at REAL,
        revoked_at REAL
    );
    CREATE INDEX pool_keys_by_user ON pool_keys (user);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE INDEX usage_by_user ON usage (user, at);
    DROP TABLE usage_hourly;
    CREATE TABLE usage_hourly (
        provider TEXT NOT NULL,
        account TEXT NOT NULL,
        model TEXT NOT NULL,
        user TEXT NOT NULL,
        hour INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        failovers INTEGER NOT NULL DEFAULT 0,
        input INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        output INTEGER NOT NULL DEFAULT 0,
        reasoning INTEGER NOT NULL DEFAULT 0,
        bytes INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (provider, account, model, user, hour)
    );
    CREATE INDEX usage_hourly_by_hour ON usage_hourly (hour);
    INSERT INTO usage_hourly
        SELECT provider, COALESCE(account, ''), COALESCE(model, ''), COALESCE(user, ''),
               CAST(at / 3600 AS INTEGER) * 3600, COUNT(*), SUM(status >= 400),
               SUM(CASE WHEN status < 400 AND attempts > 1 THEN attempts - 1 ELSE 0 END), SUM(input), SUM(cached), SUM(output),
               SUM(reasoning), SUM(bytes)
        FROM usage GROUP BY 1, 2, 3, 4, 5;
    """,
    # 4: sessions that can end (auth/session.py): a random id per user (a re-created name is
    # another user) and a session epoch per user, bumped to end every session of the user.
    """
    ALTER TABLE users ADD COLUMN uid TEXT NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN session_epoch INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET uid = lower(hex(randomblob(8))) WHERE uid = '';
    """,
    # 5: the needs-action verdict (accounts.model.AccountAction as JSON), stamped like
    # needs-re-login with the credential file it was about.
    """
    ALTER TABLE accounts ADD COLUMN action TEXT;
    ALTER TABLE accounts ADD COLUMN action_at REAL NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN action_file_ns INTEGER;
    """,
    # 6: the API the client spoke (messages, responses, chat; NULL for Gemini and side
    # calls): a translated request is booked on its serving account and provider, and this
    # says it came from another provider's client (translation.md §0.5).
    """
    ALTER TABLE usage ADD COLUMN client_format TEXT;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

ACCOUNT_COLUMNS = (
    "name, provider, windows, cooldown_until, cooldown_reason, cooldown_level, cooldown_at, "
    "backoff_until, backoff_reason, backoff_level, backoff_at, penalty, penalty_at, "
    "relogin, relogin_at, relogin_file_ns, last_used, action, action_at, action_file_ns"
)
# Placeholders for ACCOUNT_COLUMNS plus writer, updated_at, version.
ACCOUNT_MARKS = ",".join("?" * (ACCOUNT_COLUMNS.count(",") + 4))


@contextmanager
def transaction(conn: sqlite3.Connection, *, write: bool = True) -> Iterator[None]:
    """One transaction; a writing one takes the write lock up front (BEGIN IMMEDIATE), so
    it waits for other processes at the start rather than failing half-way."""
    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the db at ``path``, WAL mode, migrated to the current schema.

    ``check_same_thread=False``: the store hands the connection to one worker thread at a
    time, never two at once.
    """
    make_private(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        # A small page cache: the ledger only appends, and SQLite's default (2 MB) showed up
        # as RSS growing for the first tens of thousands of requests.
        conn.execute("PRAGMA cache_size = -512")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def make_private(path: Path) -> None:
    """The data dir 0700 and the db with its -wal and -shm 0600, before SQLite opens them.

    The db holds the session-signing secret: readable by another local user, it lets them
    forge an admin cookie. SQLite creates -wal and -shm with the db file's own mode, so a
    0600 db keeps new ones private; existing ones (an older trio-pool's) are fixed here.
    A directory we do not own (chmod refused) is left as it is.
    """
    data_dir = path.parent
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        if data_dir.stat().st_mode & 0o077:
            data_dir.chmod(0o700)
    except PermissionError:
        pass
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    path.chmod(0o600)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        try:
            side.chmod(0o600)
        except FileNotFoundError:
            continue


def schema_version(conn: sqlite3.Connection) -> int:
    conn.execute("CREATE TABLE IF NOT EXISTS version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT MAX(version) FROM version").fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the migrations this db lacks, each in its own transaction; the new version.

    A db written by a newer trio-pool (a version we do not know) is refused.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"state.db has schema version {current}; this trio-pool knows up to "
                f"{SCHEMA_VERSION}"
            )
        for number in range(current + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO version VALUES (?)", (number,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return SCHEMA_VERSION


# -- row conversion (pure) ---------------------------------------------------------------


def windows_to_json(windows: tuple[ObservedWindow, ...]) -> str:
    return json.dumps(
        [
            {
                "name": w.window.name,
                "used": w.window.used,
                "window_s": w.window.window_s,
                "resets_at": w.window.resets_at,
                "seen_at": w.seen_at,
                **({"scope": w.window.scope} if w.window.scope is not None else {}),
            }
            for w in windows
        ],
        separators=(",", ":"),
    )


def windows_from_json(text: str) -> tuple[ObservedWindow, ...]:
    """The stored windows; an entry that does not parse is dropped (the next reading fixes it)."""
    try:
        items = json.loads(text)
    except ValueError:
        return ()
    result = []
    for item in items if isinstance(items, list) else []:
        try:
            window = QuotaWindow(
                str(item["name"]),
                float(item["used"]),
                None if item.get("window_s") is None else float(item["window_s"]),
                None if item.get("resets_at") is None else float(item["resets_at"]),
                None if item.get("scope") is None else str(item["scope"]),
            )
            result.append(ObservedWindow(window, float(item["seen_at"])))
        except (KeyError, TypeError, ValueError):
            continue
    return tuple(result)


def action_to_json(action: AccountAction | None) -> str | None:
    if action is None:
        return None
    return json.dumps(
        {"kind": action.kind, "message": action.message, "link": action.link,
         "since_at": action.since_at},
        separators=(",", ":"),
    )  # fmt: skip


def action_from_json(text: str | None) -> AccountAction | None:
    """The stored action; a damaged one reads as none (the code that set it sets it again)."""
    if not text:
        return None
    try:
        item = json.loads(text)
        link = item.get("link")
        return AccountAction(
            str(item["kind"]),
            str(item["message"]),
            None if link is None else str(link),
            float(item.get("since_at") or 0.0),
        )
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def account_params(stored: StoredAccount) -> tuple[Any, ...]:
    r, s = stored.record, stored.stamps
    return (
        r.name,
        r.provider,
        windows_to_json(r.windows),
        r.cooldown_until,
        r.cooldown_reason,
        r.quota_fallback_level,
        s.cooldown_at,
        r.backoff_until,
        r.backoff_reason,
        r.throttle_level,
        s.backoff_at,
        r.penalty,
        r.penalty_at,
        r.needs_relogin,
        s.relogin_at,
        s.relogin_file_ns,
        r.last_used,
        action_to_json(r.action),
        s.action_at,
        s.action_file_ns,
    )


def account_from_row(row: tuple[Any, ...]) -> StoredAccount | None:
    """A stored account from a row in ACCOUNT_COLUMNS order; None for an unknown provider."""
    (name, provider, windows, cd_until, cd_reason, cd_level, cd_at, bo_until, bo_reason,
     bo_level, bo_at, penalty, penalty_at, relogin, relogin_at, relogin_ns, last_used,
     action, action_at, action_ns) = row  # fmt: skip
    if provider not in PROVIDERS:
        return None
    prov: ProviderName = provider
    record = AccountRecord(
        name=name,
        provider=prov,
        windows=windows_from_json(windows),
        cooldown_until=cd_until,
        cooldown_reason=cd_reason,
        quota_fallback_level=cd_level,
        backoff_until=bo_until,
        backoff_reason=bo_reason,
        throttle_level=bo_level,
        penalty=penalty,
        penalty_at=penalty_at,
        needs_relogin=relogin,
        action=action_from_json(action),
        last_used=last_used,
    )
    return StoredAccount(record, Stamps(cd_at, bo_at, relogin_at, relogin_ns, action_at, action_ns))
