"""The token-count fast path of Claude's stream observer reads what wire.as_int reads."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from trio_pool.providers.claude import _tokens
from trio_pool.providers.wire import as_int

JSON_SCALARS = (
    st.integers(-(2**70), 2**70)
    | st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, 2**63, -1, 0])
    | st.floats()
    | st.booleans()
    | st.none()
    | st.text(max_size=8)
)


@given(JSON_SCALARS)
def test_token_counts_read_as_as_int_reads_them(value: Any) -> None:
    """Any JSON scalar gives the count as_int gives (integers past 2**53 included)."""
    assert _tokens(value) == as_int(value)
