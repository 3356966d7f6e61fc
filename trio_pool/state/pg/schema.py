"""The PostgreSQL schema of multi-host mode and its migrations.

The same tables as data/state.db (design.md §3.5) plus what several hosts need: encrypted
credentials with a version, refresh leases with an epoch, and ledger rows with a unique id
(``uid``) so that a replayed outbox row is never counted twice. Migrations run in one
transaction under an advisory lock, so two hosts starting at once cannot race.
"""

from __future__ import annotations

import psycopg

MIGRATION_LOCK = 7_263_001  # pg_advisory_xact_lock key: "trio-pool schema"

# Each entry upgrades the schema by one version; never edit a released entry, append one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key text PRIMARY KEY, value bigint NOT NULL);
    INSERT INTO meta VALUES ('seq', 0);
    CREATE TABLE accounts (
        name text PRIMARY KEY,
        provider text NOT NULL,
        windows text NOT NULL DEFAULT '[]',
        cooldown_until double precision,
        cooldown_reason text NOT NULL DEFAULT '',
        cooldown_level integer NOT NULL DEFAULT 0,
        cooldown_at double precision NOT NULL DEFAULT 0,
        backoff_until double precision,
        backoff_reason text NOT NULL DEFAULT '',
        backoff_level integer NOT NULL DEFAULT 0,
        backoff_at double precision NOT NULL DEFAULT 0,
        penalty double precision NOT NULL DEFAULT 0,
        penalty_at double precision NOT NULL DEFAULT 0,
        relogin text,
        relogin_at double precision NOT NULL DEFAULT 0,
        relogin_file_ns bigint,
        last_used double precision,
        writer text NOT NULL,
        updated_at double precision NOT NULL,
        version bigint NOT NULL
    );
    CREATE INDEX accounts_by_version ON accounts (version);
    CREATE TABLE counters (
        account text NOT NULL,
        day integer NOT NULL,
        requests bigint NOT NULL DEFAULT 0,
        input bigint NOT NULL DEFAULT 0,
        cached bigint NOT NULL DEFAULT 0,
        output bigint NOT NULL DEFAULT 0,
        reasoning bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (account, day)
    );
    CREATE TABLE pins (
        provider text NOT NULL,
        key text NOT NULL,
        account text NOT NULL,
        last_used double precision NOT NULL,
        version bigint NOT NULL,
        PRIMARY KEY (provider, key)
    );
    CREATE INDEX pins_by_version ON pins (version);
    CREATE TABLE usage (
        id bigserial PRIMARY KEY,
        uid text NOT NULL UNIQUE,
        host text NOT NULL DEFAULT '',
        at double precision NOT NULL,
        "user" text,
        provider text NOT NULL,
        account text,
        model text,
        conversation text,
        status integer NOT NULL,
        attempts integer NOT NULL,
        failures text NOT NULL DEFAULT '[]',
        ttfb_ms double precision,
        duration_ms double precision NOT NULL,
        input bigint NOT NULL DEFAULT 0,
        cached bigint NOT NULL DEFAULT 0,
        output bigint NOT NULL DEFAULT 0,
        reasoning bigint NOT NULL DEFAULT 0,
        bytes bigint NOT NULL DEFAULT 0
    );
    CREATE INDEX usage_by_at ON usage (at);
    CREATE INDEX usage_by_user ON usage ("user", at);
    CREATE TABLE usage_hourly (
        provider text NOT NULL,
        account text NOT NULL,
        model text NOT NULL,
        "user" text NOT NULL,
        hour bigint NOT NULL,
        requests bigint NOT NULL DEFAULT 0,
        errors bigint NOT NULL DEFAULT 0,
        failovers bigint NOT NULL DEFAULT 0,
        input bigint NOT NULL DEFAULT 0,
        cached bigint NOT NULL DEFAULT 0,
        output bigint NOT NULL DEFAULT 0,
        reasoning bigint NOT NULL DEFAULT 0,
        bytes bigint NOT NULL DEFAULT 0,
        PRIMARY KEY (provider, account, model, "user", hour)
    );
    CREATE INDEX usage_hourly_by_hour ON usage_hourly (hour);
    CREATE TABLE users (
        name text PRIMARY KEY,
        role text NOT NULL DEFAULT 'user',
        created_at double precision NOT NULL,
        rpm integer,
        streams integer,
        share_pct double precision
    );
    CREATE TABLE pool_keys (
        id text PRIMARY KEY,
        "user" text NOT NULL,
        hash text NOT NULL UNIQUE,
        prefix text NOT NULL,
        created_at double precision NOT NULL,
        last_used_at double precision,
        revoked_at double precision
    );
    CREATE INDEX pool_keys_by_user ON pool_keys ("user");
    CREATE TABLE settings (key text PRIMARY KEY, value text NOT NULL);
    CREATE TABLE credentials (
        account text PRIMARY KEY,
        provider text NOT NULL,
        doc bytea NOT NULL,
        key_id text NOT NULL,
        version bigint NOT NULL,
        file_sha text,
        updated_at double precision NOT NULL,
        updated_by text NOT NULL
    );
    CREATE SEQUENCE lease_epoch;
    CREATE TABLE refresh_leases (
        account text PRIMARY KEY,
        epoch bigint NOT NULL,
        holder text NOT NULL DEFAULT '',
        until timestamptz NOT NULL,
        sent_at timestamptz,
        base_version bigint
    );
    """,
    # state.db's migrations 4 and 5, on PostgreSQL: session epochs (a sign-out on one host
    # ends the cookie on every host: the epoch is read from here) and the needs-action
    # verdict. Here ``action_file_ns``, like ``relogin_file_ns``, holds the credential
    # version the verdict is about (state.db keeps the pool file's mtime_ns there).
    # ``signups``: the friend sign-ups of the last hours, so ``[join] signups_per_hour``
    # holds for the pool, not per host. ``hosts``: each host's heartbeat (``hosts.py``).
    # ``credentials.removed_at``: ``accounts remove`` leaves a tombstone (no document, the
    # last file's digest), so the same pool file on some host is not imported again.
    """
    ALTER TABLE users ADD COLUMN uid text NOT NULL DEFAULT '';
    ALTER TABLE users ADD COLUMN session_epoch bigint NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN action text;
    ALTER TABLE accounts ADD COLUMN action_at double precision NOT NULL DEFAULT 0;
    ALTER TABLE accounts ADD COLUMN action_file_ns bigint;
    ALTER TABLE credentials ADD COLUMN removed_at double precision;
    CREATE TABLE signups (at double precision NOT NULL);
    CREATE INDEX signups_by_at ON signups (at);
    CREATE TABLE hosts (
        host_id text PRIMARY KEY,
        hostname text NOT NULL,
        pid integer NOT NULL,
        version text NOT NULL,
        started_at double precision NOT NULL,
        seen_at double precision NOT NULL,
        stopped_at double precision
    );
    """,
    # state.db's migration 6: the API the client spoke (a translated request, usage/ledger.py).
    """
    ALTER TABLE usage ADD COLUMN client_format text;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: psycopg.Connection) -> int:
    """Bring the database to SCHEMA_VERSION (each host calls this at start); the version.

    A database written by a newer trio-pool is refused rather than misread.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = int(row[0]) if row and row[0] is not None else 0
        if current > SCHEMA_VERSION:
            raise psycopg.DataError(
                f"the database has trio-pool schema version {current}; this trio-pool knows "
                f"up to {SCHEMA_VERSION}"
            )
        for number in range(current + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[number - 1].encode())
            conn.execute("INSERT INTO schema_version VALUES (%s)", (number,))
    return SCHEMA_VERSION
