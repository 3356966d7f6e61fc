"""The refresh lease on PostgreSQL: one holder, the intent mark, in-doubt take-overs, and
the compare-and-set write-back (state/pg/lease.py, state/pg/credentials.py)."""

from __future__ import annotations

import threading
import time

from tests.state.pg.helpers import KEYRING, migrated
from trio_pool.state.pg import credentials, lease

A = "codex/a"


def _seed(url: str) -> None:
    with migrated(url) as conn:
        credentials.import_document(
            conn, KEYRING, A, "codex", {"rt": "r0"}, sha="f0", writer="t", now=0.0
        )


def test_a_live_lease_keeps_every_other_holder_out_until_released(pg_url: str) -> None:
    """While host 1 holds the lease host 2 is told it is busy; released, host 2 takes it
    with a new epoch."""
    _seed(pg_url)
    with migrated(pg_url) as conn:
        first = lease.acquire(conn, A, "h1", 30, 5)
        assert isinstance(first, lease.Held)
        assert first.doubt_left_s is None
        assert first.version == 1
        busy = lease.acquire(conn, A, "h2", 30, 5)
        assert isinstance(busy, lease.Busy)
        assert busy.holder == "h1"
        assert lease.release(conn, A, first.epoch)
        second = lease.acquire(conn, A, "h2", 30, 5)
        assert isinstance(second, lease.Held)
        assert second.epoch > first.epoch


def test_an_expired_lease_without_a_mark_is_taken_over_without_doubt(pg_url: str) -> None:
    """A holder that died before marking its intent never sent: the next one may send."""
    _seed(pg_url)
    with migrated(pg_url) as conn:
        dead = lease.acquire(conn, A, "h1", 0.05, 5)
        assert isinstance(dead, lease.Held)
        time.sleep(0.1)
        taker = lease.acquire(conn, A, "h2", 30, 5)
        assert isinstance(taker, lease.Held)
        assert taker.doubt_left_s is None
        # The dead holder wakes up: its lease is gone, so it must not send.
        assert lease.mark(conn, A, dead.epoch, 1, 0.0) is None
        assert lease.mark(conn, A, taker.epoch, 1, 1.0) is not None


def test_an_expired_lease_after_the_mark_is_in_doubt_until_the_version_moves(
    pg_url: str,
) -> None:
    """A holder that marked and vanished may have spent the token: the taker is told to
    wait; once its write-back lands (version 2), a later taker is not in doubt."""
    _seed(pg_url)
    with migrated(pg_url) as conn:
        holder = lease.acquire(conn, A, "h1", 0.2, 5)
        assert isinstance(holder, lease.Held)
        assert lease.mark(conn, A, holder.epoch, 1, 0.0) is not None
        time.sleep(0.3)
        taker = lease.acquire(conn, A, "h2", 1, 5)
        assert isinstance(taker, lease.Held)
        assert taker.doubt_left_s is not None
        assert 0 < taker.doubt_left_s <= 5
        assert taker.left_s > 1  # held for the doubt wait too
        # A third host also sees the doubt (the mark survives the take-over).
        lease.release(conn, A, taker.epoch, resolved=False)
        again = lease.acquire(conn, A, "h3", 1, 5)
        assert isinstance(again, lease.Held)
        assert again.doubt_left_s is not None
        # The paused first holder lands its new token late: the compare-and-set on the
        # version still accepts it, and the doubt is over.
        landed = credentials.compare_and_set(
            conn, KEYRING, A, 1, {"rt": "r1"}, writer="h1", now=1.0
        )
        assert landed == 2
        lease.release(conn, A, again.epoch)
        after = lease.acquire(conn, A, "h4", 1, 5)
        assert isinstance(after, lease.Held)
        assert after.doubt_left_s is None


def test_a_stale_write_back_is_refused_and_the_newer_token_kept(pg_url: str) -> None:
    """Compare-and-set on the version: two writers from version 1, only the first lands."""
    _seed(pg_url)
    with migrated(pg_url) as conn:
        assert credentials.compare_and_set(conn, KEYRING, A, 1, {"rt": "new"}, writer="a", now=1)
        assert (
            credentials.compare_and_set(conn, KEYRING, A, 1, {"rt": "old"}, writer="b", now=2)
            is None
        )
        stored = credentials.read(conn, KEYRING, A)
        assert stored is not None
        assert stored.document == {"rt": "new"}
        assert stored.version == 2


def test_the_mark_is_refused_when_the_credentials_moved_on(pg_url: str) -> None:
    """A holder that read version 1 cannot mark once version 2 is stored (its refresh
    token is spent): it adopts instead of sending."""
    _seed(pg_url)
    with migrated(pg_url) as conn:
        held = lease.acquire(conn, A, "h1", 30, 5)
        assert isinstance(held, lease.Held)
        credentials.compare_and_set(conn, KEYRING, A, 1, {"rt": "r1"}, writer="x", now=1)
        assert lease.mark(conn, A, held.epoch, 1, 0.0) is None


def test_racing_hosts_send_once_per_version(pg_url: str) -> None:
    """Six threads (six hosts) loop acquire, mark, write-back for 200 rotations: every
    mark is on a distinct version, so no refresh token is ever spent twice."""
    _seed(pg_url)
    marked: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def host(name: str) -> None:
        try:
            with migrated(pg_url) as conn:
                while not stop.is_set():
                    held = lease.acquire(conn, A, name, 5, 5)
                    if isinstance(held, lease.Busy) or held.version is None:
                        continue
                    if lease.mark(conn, A, held.epoch, held.version, 0.5) is None:
                        lease.release(conn, A, held.epoch)
                        continue
                    with lock:
                        marked.append(held.version)
                        if len(marked) >= 200:
                            stop.set()
                    credentials.compare_and_set(
                        conn, KEYRING, A, held.version, {"v": held.version}, writer=name, now=0
                    )
                    lease.release(conn, A, held.epoch)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=host, args=(f"h{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(marked) >= 200
    assert len(set(marked)) == len(marked)
