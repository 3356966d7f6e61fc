"""Header filters and maps on every request: the fast forms against their definitions."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from trio_pool.providers.wire import CLIENT_CREDENTIAL_HEADERS, forwardable, header_map
from trio_pool.server.messages import end_to_end

names = st.sampled_from(
    ["connection", "keep-alive", "te", "upgrade", "authorization", "x-api-key", "host", "x-foo"]
)
values = st.sampled_from(["", "close", "x-foo", "X-Foo, te", " keep-alive ,x-bar,", "v"])


@given(st.lists(st.tuples(names, values), max_size=8))
def test_forwardable_is_end_to_end_without_the_client_credentials(
    headers: list[tuple[str, str]],
) -> None:
    """Hop-by-hop fields, fields named in Connection and every client credential are
    dropped; the rest keep their order and values."""
    head = tuple(headers)
    expected = [(k, v) for k, v in end_to_end(head) if k not in CLIENT_CREDENTIAL_HEADERS]
    assert forwardable(head) == expected


@given(st.lists(st.tuples(names, values), max_size=8))
def test_header_map_keeps_the_first_value_of_each_name_in_order(
    headers: list[tuple[str, str]],
) -> None:
    """Each name maps to its first value, names in the order they first appear."""
    expected: dict[str, str] = {}
    for key, value in headers:
        expected.setdefault(key, value)
    assert list(header_map(tuple(headers)).items()) == list(expected.items())
