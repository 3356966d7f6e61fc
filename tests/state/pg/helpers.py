"""Small helpers for the PostgreSQL tests: a migrated connection and a test key ring."""

from __future__ import annotations

import base64

import psycopg

from trio_pool.state.pg import schema
from trio_pool.state.pg.sealing import Keyring

KEY = base64.b64encode(bytes(range(32))).decode()
KEYRING = Keyring.parse(f"test:{KEY}")


def migrated(url: str) -> psycopg.Connection:
    conn = psycopg.connect(url, autocommit=True)
    schema.migrate(conn)
    return conn
