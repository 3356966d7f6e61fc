"""Credential rows in PostgreSQL: read, import from a pool file, compare-and-set.

Every write bumps ``version`` and seals the document for that version (``sealing``): the
version is the fence of the refresh protocol (``lease.py``). A pool file is imported only
when its content (``file_sha``) differs from the last import, so a host restarting with an
old copy of a file never overwrites tokens that were rotated since. A removed account stays
as a tombstone (``removed_at``, an empty document, the last import's digest): the file it
came from, still in some host's pool directory, is not imported again; a new login is.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import attrs
import psycopg

from trio_pool.providers.base import PROVIDERS, ProviderName
from trio_pool.state.pg.exchange import notify
from trio_pool.state.pg.sealing import Keyring


@attrs.frozen
class StoredCredential:
    account: str
    provider: ProviderName
    version: int
    document: dict[str, Any] = attrs.field(repr=False)


def file_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def encode(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def _decode(keyring: Keyring, account: str, version: int, blob: bytes) -> dict[str, Any]:
    document = json.loads(keyring.open(blob, account, version))
    assert isinstance(document, dict)
    return document


def versions(conn: psycopg.Connection) -> dict[str, int]:
    """Every stored account and its credential version (cheap: no document)."""
    return {
        a: int(v)
        for a, v in conn.execute(
            "SELECT account, version FROM credentials WHERE removed_at IS NULL"
        )
    }


def read_many(
    conn: psycopg.Connection, keyring: Keyring, accounts: list[str]
) -> list[StoredCredential | Exception]:
    """The named accounts' credentials, decrypted; a row that will not open is returned as
    its error (CredentialsError naming the account), so one bad row never hides the rest."""
    rows = conn.execute(
        "SELECT account, provider, version, doc FROM credentials "
        "WHERE account = ANY(%s) AND removed_at IS NULL",
        (accounts,),
    ).fetchall()
    result: list[StoredCredential | Exception] = []
    for account, provider, version, blob in rows:
        if provider not in PROVIDERS:
            continue
        try:
            document = _decode(keyring, account, int(version), bytes(blob))
        except Exception as exc:  # a bad row is reported, the others still load
            result.append(exc)
            continue
        result.append(StoredCredential(account, provider, int(version), document))
    return result


def read(conn: psycopg.Connection, keyring: Keyring, account: str) -> StoredCredential | None:
    found = read_many(conn, keyring, [account])
    if not found:
        return None
    if isinstance(found[0], Exception):
        raise found[0]
    return found[0]


def import_document(
    conn: psycopg.Connection,
    keyring: Keyring,
    account: str,
    provider: ProviderName,
    document: Mapping[str, Any],
    *,
    sha: str,
    writer: str,
    now: float,
) -> int | None:
    """Store a pool file's document unless this exact file was imported before; the new
    version, or None when nothing changed."""
    with conn.transaction():
        row = conn.execute(
            "SELECT version, file_sha FROM credentials WHERE account = %s FOR UPDATE", (account,)
        ).fetchone()
        if row is not None and row[1] == sha:
            return None
        version = 1 if row is None else int(row[0]) + 1
        blob, key_id = keyring.seal(encode(document), account, version)
        conn.execute(
            "INSERT INTO credentials (account, provider, doc, key_id, version, file_sha, "
            "updated_at, updated_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (account) DO UPDATE SET doc = excluded.doc, key_id = excluded.key_id, "
            "version = excluded.version, file_sha = excluded.file_sha, "
            "updated_at = excluded.updated_at, updated_by = excluded.updated_by, "
            "removed_at = NULL",
            (account, provider, blob, key_id, version, sha, now, writer),
        )
        notify(conn, f"cred:{account}")
    return version


def compare_and_set(
    conn: psycopg.Connection,
    keyring: Keyring,
    account: str,
    expected: int,
    document: Mapping[str, Any],
    *,
    writer: str,
    now: float,
) -> int | None:
    """Replace the credentials only if they are still at version ``expected``; the new
    version, or None when someone else wrote first (ours is then stale: discard it)."""
    version = expected + 1
    blob, key_id = keyring.seal(encode(document), account, version)
    with conn.transaction():
        row = conn.execute(
            "UPDATE credentials SET doc = %s, key_id = %s, version = %s, updated_at = %s, "
            "updated_by = %s WHERE account = %s AND version = %s AND removed_at IS NULL "
            "RETURNING version",
            (blob, key_id, version, now, writer, account, expected),
        ).fetchone()
        if row is None:
            return None
        notify(conn, f"cred:{account}")
    return version


def remove(conn: psycopg.Connection, account: str, *, writer: str, now: float) -> bool:
    """Take the account out of the pool on every host: a tombstone replaces the sealed
    document (no token is kept) and the version moves on, so a refresh in flight cannot
    land; True when there was such an account."""
    with conn.transaction():
        gone = conn.execute(
            "UPDATE credentials SET doc = %s, key_id = '', version = version + 1, "
            "removed_at = %s, updated_at = %s, updated_by = %s "
            "WHERE account = %s AND removed_at IS NULL",
            (b"", now, now, writer, account),
        ).rowcount
        conn.execute("DELETE FROM refresh_leases WHERE account = %s", (account,))
        notify(conn, f"cred:{account}")
    return gone > 0


def listing(conn: psycopg.Connection, keyring: Keyring) -> list[StoredCredential | Exception]:
    """Every account in the shared store, decrypted (``accounts list``)."""
    return read_many(conn, keyring, list(versions(conn)))


def rekey(conn: psycopg.Connection, keyring: Keyring) -> int:
    """Re-seal every row not under the current key (same version: nothing else changes);
    how many rows were re-sealed."""
    done = 0
    rows = conn.execute(
        "SELECT account, version FROM credentials WHERE key_id <> %s AND removed_at IS NULL",
        (keyring.current,),
    ).fetchall()
    for account, version in rows:
        with conn.transaction():
            row = conn.execute(
                "SELECT doc FROM credentials WHERE account = %s AND version = %s FOR UPDATE",
                (account, version),
            ).fetchone()
            if row is None:
                continue  # rotated meanwhile, under the current key
            plain = keyring.open(bytes(row[0]), account, int(version))
            blob, key_id = keyring.seal(plain, account, int(version))
            conn.execute(
                "UPDATE credentials SET doc = %s, key_id = %s WHERE account = %s",
                (blob, key_id, account),
            )
            done += 1
    return done
