"""The benchmark's fake upstream as the ChatGPT backend (the translated-stream workload):
Codex's event sequence, one HTTP chunk per event, and the backend's refusals."""

from __future__ import annotations

from bench import codex_shapes, sse_shapes, upstream
from bench.workloads import (
    CODEX_PATH,
    codex_body,
    codex_headers,
    codex_stream_ok,
    stream_ok,
)
from tests.bench.test_stream_framing import answered, chunks_of, one_chunk, status_of
from trio_pool.translate import sse
from trio_pool.translate.responses_stream_to_messages import ResponsesToMessages

EVENTS = 20
# created, in_progress, output_item.added, content_part.added, the deltas,
# output_text.done, content_part.done, output_item.done, completed.
CODEX_EVENTS = EVENTS + 8
TOKEN, ACCOUNT = "codex-access-token", "acct-bench-1"
CREDENTIALS = (("authorization", f"Bearer {TOKEN}"), ("chatgpt-account-id", ACCOUNT))


def codex_request(
    body: bytes | None = None, credentials: tuple[tuple[str, str], ...] = CREDENTIALS
) -> bytes:
    body = codex_body() if body is None else body
    lines = [f"POST {CODEX_PATH} HTTP/1.1", "host: 127.0.0.1"]
    lines += [f"{name}: {value}" for name, value in codex_headers(credentials)]
    lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def parsed(event: bytes) -> tuple[str, str]:
    """(event name, data) of one encoded SSE event."""
    name_line, data_line = event.strip().split(b"\n")
    return name_line.removeprefix(b"event: ").decode(), data_line.removeprefix(b"data: ").decode()


def test_codex_stream_is_one_chunk_per_event_in_the_backends_order() -> None:
    """The Codex reply is its head with x-codex-* limits, one chunk per SSE event from
    response.created to response.completed, and the last-chunk marker."""
    pieces = codex_shapes.CodexReplies(sse_shapes.Shape(events=EVENTS, event_bytes=200)).stream
    assert b"x-codex-primary-used-percent: " in pieces[0]
    assert pieces[-1] == sse_shapes.LAST_CHUNK
    names = [parsed(one_chunk(piece))[0] for piece in pieces[1:-1]]
    assert len(names) == CODEX_EVENTS
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names.count("response.output_text.delta") == EVENTS
    assert names[-1] == "response.completed"


def test_translated_codex_stream_passes_the_workloads_check() -> None:
    """Translated by the proxy's own translator, the Codex stream becomes a Messages stream
    with one text delta per Codex delta: what the workload's check counts."""
    pieces = codex_shapes.CodexReplies(sse_shapes.Shape(events=EVENTS, event_bytes=200)).stream
    translator = ResponsesToMessages(client_model="gpt-6.1-sol")
    out = []
    for piece in pieces[1:-1]:
        out += translator.feed(sse.decode(*parsed(one_chunk(piece))))
    out += translator.finish()
    assert stream_ok(EVENTS)(sse.encode_all(out))
    assert not stream_ok(EVENTS + 1)(sse.encode_all(out))


def test_fake_upstream_serves_codex_one_write_per_event() -> None:
    """A valid Codex request gets the stream written one event at a time; the native
    workload's check accepts it."""
    up = upstream.Upstream(set(), {TOKEN: ACCOUNT})
    up.codex = codex_shapes.CodexReplies(sse_shapes.Shape(events=EVENTS, event_bytes=50))
    writes = answered(up, codex_request())
    assert status_of(writes[0]) == 200
    assert len(writes) == 1 + CODEX_EVENTS + 1
    body = b"".join(chunks_of(b"".join(writes)))
    assert codex_stream_ok(EVENTS)(body)
    assert up.stats.requests == 1


def test_fake_upstream_refuses_codex_requests_the_backend_refuses() -> None:
    """An unknown token is 401, another account's id 403, a body that does not stream or
    asks to store 400 with the backend's detail; nothing is streamed for any of them."""
    up = upstream.Upstream(set(), {TOKEN: ACCOUNT})
    unknown = (("authorization", "Bearer other"), ("chatgpt-account-id", ACCOUNT))
    other_account = (("authorization", f"Bearer {TOKEN}"), ("chatgpt-account-id", "acct-x"))
    assert status_of(answered(up, codex_request(credentials=unknown))[0]) == 401
    assert status_of(answered(up, codex_request(credentials=other_account))[0]) == 403
    not_streaming = codex_body().replace(b'"stream":true', b'"stream":false')
    (refused,) = answered(up, codex_request(not_streaming))
    assert status_of(refused) == 400
    assert refused.endswith(b'{"detail":"Stream must be set to true"}')
    storing = codex_body().replace(b'"store":false', b'"store":true')
    (refused,) = answered(up, codex_request(storing))
    assert refused.endswith(b'{"detail":"Store must be set to false"}')
    assert up.stats.refused == 4
    assert up.stats.requests == 0
