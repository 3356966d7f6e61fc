"""`trio-pool state migrate|rekey|keygen`: multi-host mode's shared PostgreSQL.

migrate copies this host's data/state.db and pool directory into ``state_url`` (idempotent:
``setup/migrate_state.py``); rekey re-seals every credential under the first key of
TRIO_POOL_STATE_KEY; keygen prints a new key for it.
"""

from __future__ import annotations

import argparse
from typing import Any

from trio_pool.cli.args import add_config_args, config_from_args
from trio_pool.errors import ConfigError, TrioPoolError


def add_commands(sub: Any) -> None:
    state = sub.add_parser("state", help="multi-host mode: the shared PostgreSQL")
    verbs = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    migrate = verbs.add_parser(
        "migrate", help="copy this host's data/state.db and pool directory into state_url"
    )
    add_config_args(migrate)
    migrate.add_argument("--to", metavar="URL", help="PostgreSQL URL (default: state_url)")
    rekey = verbs.add_parser("rekey", help="re-seal every credential under the first key")
    add_config_args(rekey)
    verbs.add_parser("keygen", help="print a new key for TRIO_POOL_STATE_KEY")


def _cmd_state(args: argparse.Namespace) -> int:
    from trio_pool.state.pg.sealing import Keyring

    if args.state_command == "keygen":
        print(Keyring.generate())
        return 0
    import psycopg

    from trio_pool.setup.migrate_state import migrate_state, summary
    from trio_pool.state.pg import credentials as stored
    from trio_pool.state.pg import schema
    from trio_pool.state.pg.connect import redact_url
    from trio_pool.state.pg.store import default_host_id

    config = config_from_args(args)
    url = getattr(args, "to", None) or config.state_url
    if not url:
        raise ConfigError(["state_url: not set (or pass --to postgresql://...)"])
    keyring = Keyring.from_env(config.state.key_env)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            if args.state_command == "rekey":
                schema.migrate(conn)
                print(f"re-sealed {stored.rekey(conn, keyring)} credentials")
                return 0
            counts = migrate_state(
                config.data_dir / "state.db", config.pool_dir, conn, keyring,
                writer=config.state.host_id or default_host_id(),
            )  # fmt: skip
    except psycopg.Error as exc:
        # The URL may carry a password: only its redacted form reaches the message.
        raise TrioPoolError(f"{redact_url(url)}: {str(exc).strip().splitlines()[0]}") from None
    print(f"copied into {redact_url(url)}: {summary(counts)}")
    return 0


COMMANDS = {"state": _cmd_state}
