"""M1: state.db holds the session secret, so the data dir is 0700 and the db files 0600,
whatever the umask, and an older install's 0755/0644 files are fixed on open."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from tests.proxy.test_shared_mode import join, shared
from trio_pool.config import Config

FORGE = """
import sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
print(conn.execute("SELECT value FROM settings WHERE key = 'session_secret'").fetchone()[0])
"""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The common default umask 022, for the test's duration."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def test_a_fresh_data_dir_and_db_are_private(
    make_env: Callable[..., Any], tmp_path: Path, open_umask: None
) -> None:
    """With umask 022: data/ is 0700 and state.db, -wal and -shm are 0600 while serving."""
    env = await make_env(tweak=shared)
    await join(env, "ann")  # a write: the -wal and -shm files exist now
    data = env.running.config.data_dir
    assert mode(data) == 0o700
    files = [data / "state.db", data / "state.db-wal", data / "state.db-shm"]
    for path in files:
        assert path.exists(), path
        assert mode(path) == 0o600, path
    assert mode(data / ".users-exist") == 0o600


async def test_an_older_installs_open_files_are_made_private(
    make_env: Callable[..., Any], tmp_path: Path, open_umask: None
) -> None:
    """A data dir 0755 with a 0644 db from before this fix is tightened when trio-pool opens
    it (the state survives)."""
    first = await make_env(tweak=shared)
    await join(first, "ann")
    data = first.running.config.data_dir
    first.running.shutdown.begin(0)
    data.chmod(0o755)
    for path in data.iterdir():
        path.chmod(0o644)
    from trio_pool.state.store import StateStore

    store = await StateStore.open(data)
    await store.aclose()
    assert mode(data) == 0o700
    assert mode(data / "state.db") == 0o600
    for side in ("state.db-wal", "state.db-shm"):
        if (data / side).exists():
            assert mode(data / side) == 0o600


SYSTEM_PYTHON = Path("/usr/bin/python3")


def copy_db(source: Path, target: Path) -> None:
    """A consistent copy in rollback-journal mode (readable without a -shm file)."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode = DELETE")
    src.close()
    dst.close()


async def forge_as_nobody(script: Path, db: Path) -> tuple[int, str, str]:
    with trio.fail_after(30):
        done = await trio.run_process(
            ["runuser", "-u", "nobody", "--", str(SYSTEM_PYTHON), str(script), str(db)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None or not SYSTEM_PYTHON.exists(),
    reason="needs root, runuser and /usr/bin/python3",
)
async def test_another_local_user_cannot_read_the_session_secret(
    make_env: Callable[..., Any], open_umask: None
) -> None:
    """The audit's step: as `nobody`, read settings.session_secret from state.db (to sign an
    admin cookie), in a working directory others may enter. A world-readable copy shows the
    harness can; the real db refuses."""
    public = Path(tempfile.mkdtemp(prefix="trio-pool-m1-", dir="/tmp"))
    try:
        os.chmod(public, 0o755)

        def in_public(config: Config) -> Config:
            return attrs.evolve(shared(config), data_dir=public / "data")

        env = await make_env(tweak=in_public)
        await join(env, "ann")
        db = public / "data" / "state.db"
        secret = env.services.directory.secret.hex()
        forge = public / "forge.py"
        forge.write_text(FORGE)
        forge.chmod(0o644)
        control = public / "copy.db"
        copy_db(db, control)
        control.chmod(0o644)
        code, out, err = await forge_as_nobody(forge, control)
        assert (code, out.strip()) == (0, secret), err  # the harness works: a 0644 db gives it away
        code, out, err = await forge_as_nobody(forge, db)
        assert code != 0
        assert secret not in out
        assert "unable to open" in err or "ermission denied" in err
        env.running.shutdown.begin(0)
    finally:
        shutil.rmtree(public, ignore_errors=True)
