from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.providers.samples import CLAUDE_STREAM, GEMINI_STREAM
from trio_pool.providers.sse import SseEvent, SseEventTooLarge, SseParser


def parse_all(chunks: list[bytes], parser: SseParser | None = None) -> list[SseEvent]:
    parser = parser or SseParser()
    return [event for chunk in chunks for event in parser.feed(chunk)]


def test_events_names_and_multiline_data() -> None:
    """Named events, default "message", multi-line data joined with \\n, comments ignored."""
    stream = b": heartbeat\nevent: a\ndata: 1\n\ndata: x\ndata:y\nid: 7\nretry: 10\n\n"
    assert parse_all([stream]) == [SseEvent("a", "1"), SseEvent("message", "x\ny")]


def test_crlf_lines_split_between_cr_and_lf() -> None:
    """\\r\\n line ends work even when a chunk ends between the \\r and the \\n."""
    assert parse_all([b"data: a\r", b"\n\r", b"\n"]) == [SseEvent("message", "a")]


def test_event_without_data_and_unfinished_event_are_not_dispatched() -> None:
    """An event with no data line, and an event cut off at the end, produce nothing."""
    assert parse_all([b"event: x\n\ndata: half"]) == []


@pytest.mark.parametrize("stream", [CLAUDE_STREAM, GEMINI_STREAM])
def test_every_split_gives_the_same_events(stream: bytes) -> None:
    """Splitting a stream at any byte boundary does not change the events."""
    whole = parse_all([stream])
    for i in range(len(stream) + 1):
        assert parse_all([stream[:i], stream[i:]]) == whole
    assert parse_all([stream[i : i + 1] for i in range(len(stream))]) == whole


def test_oversized_event_is_skipped_and_parsing_resumes() -> None:
    """An event over the limit raises our error once, keeps earlier events, then resyncs."""
    parser = SseParser(max_event_bytes=32)
    with pytest.raises(SseEventTooLarge) as info:
        parser.feed(b"data: ok\n\ndata: " + b"x" * 40)
    assert info.value.events == [SseEvent("message", "ok")]
    assert parser.feed(b"x" * 100) == []
    assert parser.feed(b"\n\r\ndata: after\n\n") == [SseEvent("message", "after")]


def test_oversized_event_in_many_lines() -> None:
    """Many short lines that add up past the limit are also refused, and memory stays bounded."""
    parser = SseParser(max_event_bytes=64)
    for _ in range(3):
        parser.feed(b"data: 0123456789\n")
    with pytest.raises(SseEventTooLarge):
        parser.feed(b"data: 0123456789\n")
    assert parser.feed(b"data: 0123456789\n" * 100) == []
    assert parser.feed(b"data: more\n\ndata: next\n\n") == [SseEvent("message", "next")]


def test_name_filter_skips_other_named_events_only() -> None:
    """With ``names`` set, other named events are dropped; unnamed events still come out."""
    parser = SseParser(names=frozenset({b"keep"}))
    stream = b"event: keep\ndata: 1\n\nevent: drop\ndata: 2\n\ndata: 3\n\n"
    assert parser.feed(stream) == [SseEvent("keep", "1"), SseEvent("message", "3")]


FIELDS = st.sampled_from(
    [b"event: keep", b"event:keep", b"event:  keep", b"event: drop", b"event: drop2", b"event:",
     b"event: keeper", b"data: 1", b"data:", b"data", b": ping", b"id: 4", b"", b"", b"",
     b'data: {"event: keep"}', b"event: keep\r", b"retry: 1"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    lines=st.lists(FIELDS, max_size=30),
    cuts=st.lists(st.integers(0, 400), max_size=4),
    limit=st.sampled_from([20, 8 * 1024 * 1024]),
)
def test_skipping_unwanted_events_changes_no_dispatched_event(
    lines: list[bytes], cuts: list[int], limit: int
) -> None:
    """The regex that steps over runs of unwanted named events yields exactly the events
    the line loop yields, however the stream is cut into reads."""
    stream = b"\n".join(lines) + b"\n"
    pieces = [stream[a:b] for a, b in itertools.pairwise([0, *sorted(cuts), len(stream)])]
    names = frozenset({b"keep", b"message"})
    skimming = SseParser(max_event_bytes=limit, names=names)
    plain = SseParser(max_event_bytes=limit, names=names)
    plain._skip = None  # the line loop only
    assert skimming._skip is not None
    for piece in pieces:
        assert feed_quietly(skimming, piece) == feed_quietly(plain, piece)


def feed_quietly(parser: SseParser, piece: bytes) -> list[SseEvent]:
    try:
        return parser.feed(piece)
    except SseEventTooLarge as exc:
        return exc.events


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(FIELDS, max_size=30),
    crlf=st.booleans(),
    cuts=st.lists(st.integers(0, 400), max_size=6),
    names=st.sampled_from([None, frozenset({b"keep", b"message"})]),
)
def test_any_cut_into_reads_gives_the_events_of_one_read(
    lines: list[bytes], crlf: bool, cuts: list[int], names: frozenset[bytes] | None
) -> None:
    """Reads cut anywhere (inside a line, between CR and LF, several lines at once) give
    the events of the whole stream read at once: only the unfinished line waits."""
    stream = (b"\r\n" if crlf else b"\n").join(lines) + b"\n"
    pieces = [stream[a:b] for a, b in itertools.pairwise([0, *sorted(cuts), len(stream)])]
    assert parse_all(pieces, SseParser(names=names)) == parse_all([stream], SseParser(names=names))
