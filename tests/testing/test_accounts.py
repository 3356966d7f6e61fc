"""Quota windows and refresh-token rotation of simulated accounts (pure, explicit now)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trio_pool.testing.accounts import SimWindow
from trio_pool.testing.faults import SimConfig, full_text, text_pieces
from trio_pool.testing.issue import new_account

NOW = 1_900_000_000.0


def test_window_blocks_when_full_and_resets_after_its_time() -> None:
    """A full window blocks until its reset time, then starts empty."""
    account = new_account("codex", "a", now=NOW, windows=[SimWindow("5h", 100.0, 2)])
    account.consume(1, NOW)
    assert account.blocking_window(NOW) is None
    account.consume(1, NOW + 1)
    blocking = account.blocking_window(NOW + 99)
    assert blocking is not None
    assert blocking.reset_at(NOW) == NOW + 100
    assert account.blocking_window(NOW + 100) is None
    assert account.windows[0].used == 0


def test_token_units_count_tokens() -> None:
    """quota_unit="token" charges input plus output tokens."""
    account = new_account("claude", "a", now=NOW, quota_unit="token")
    assert account.units_for(10, 5) == 15
    assert new_account("claude", "b", now=NOW).units_for(10, 5) == 1


def test_rotation_retires_the_old_refresh_token() -> None:
    """After a rotation the old refresh token reads as reused, a foreign one as revoked."""
    account = new_account("claude", "a", now=NOW)
    old = account.refresh_token
    account.rotate(access_token="x", refresh_token="new", expires_at=NOW + 10)
    assert account.check_refresh("new") == "current"
    assert account.check_refresh(old) == "reused"
    assert account.check_refresh("other") == "revoked"


@settings(max_examples=100, deadline=None)
@given(
    deltas=st.integers(1, 50),
    delta_bytes=st.none() | st.integers(1, 40),
    text=st.text(min_size=0, max_size=80),
)
def test_text_pieces_match_the_config(deltas: int, delta_bytes: int | None, text: str) -> None:
    """There are always `deltas` non-empty pieces; with delta_bytes each has exactly that length."""
    config = SimConfig(deltas=deltas, delta_bytes=delta_bytes, text=text)
    pieces = text_pieces(config)
    assert len(pieces) == deltas
    assert all(pieces)
    if delta_bytes is not None:
        assert all(len(p) == delta_bytes for p in pieces)
    assert full_text(config) == "".join(pieces)
