"""A throwaway PostgreSQL cluster for tests and the multi-host bench (Debian's PostgreSQL 15).

``initdb`` refuses to run as root, so under root the cluster belongs to the ``postgres``
user (``runuser -u postgres --``); as anyone else it runs as that user. It listens on
127.0.0.1 on a free port with ``trust`` authentication, lives in a temporary directory,
and is stopped (``pg_ctl -m fast``) and deleted by ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import attrs
import psycopg

PG_BIN_DIRS = (Path("/usr/lib/postgresql/15/bin"), Path("/usr/lib/postgresql/16/bin"))


class PostgresUnavailable(Exception):
    """No PostgreSQL server binaries, or the cluster would not start; the reason says which."""


def find_bin_dir() -> Path | None:
    env = os.environ.get("TRIO_POOL_PG_BIN")
    candidates = [Path(env)] if env else list(PG_BIN_DIRS)
    for directory in candidates:
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define(eq=False)
class PgCluster:
    bin_dir: Path
    root: Path
    port: int
    _as_postgres: bool

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        command = list(argv)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise PostgresUnavailable(
                f"{Path(argv[0]).name} failed ({done.returncode}): {done.stderr.strip()[-400:]}"
            )

    @classmethod
    def start(cls) -> PgCluster:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PostgresUnavailable(
                "no PostgreSQL server binaries in /usr/lib/postgresql/15/bin "
                "(apt-get install postgresql, or set TRIO_POOL_PG_BIN)"
            )
        as_postgres = os.geteuid() == 0
        root = Path(tempfile.mkdtemp(prefix="trio-pool-pg-"))
        if as_postgres:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(root, ignore_errors=True)
                raise PostgresUnavailable("running as root and there is no postgres user") from None
            os.chown(root, entry.pw_uid, entry.pw_gid)
        cluster = cls(bin_dir, root, _free_port(), as_postgres)
        try:
            cluster._run(
                str(bin_dir / "initdb"), "-D", str(cluster.data_dir), "-A", "trust",
                "-U", "postgres", "--no-sync", "-E", "UTF8",
            )  # fmt: skip
            options = (
                f"-p {cluster.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200 -c synchronous_commit=off -c full_page_writes=off"
            )
            cluster._run(
                str(bin_dir / "pg_ctl"), "-D", str(cluster.data_dir), "-o", options,
                "-l", str(root / "log"), "-w", "start",
            )  # fmt: skip
        except (PostgresUnavailable, OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise PostgresUnavailable(f"the test cluster did not start: {exc}") from None
        return cluster

    def stop(self) -> None:
        with contextlib.suppress(PostgresUnavailable, OSError, subprocess.TimeoutExpired):
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
