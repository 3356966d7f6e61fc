"""The live feed: fan-out without waiting, bounded buffers, recent ends, and the SSE stream."""

from __future__ import annotations

import json

import trio
import trio.testing

from tests.dashboard.data_helpers import TIMEOUT_S, serving
from trio_pool.dashboard.live import relay_live
from trio_pool.server.connection import Exchange
from trio_pool.server.server import Shutdown
from trio_pool.usage.ledger import LedgerRow, Tally
from trio_pool.usage.live import LiveFeed, end_document, start_document, start_of


def _row() -> LedgerRow:
    return LedgerRow(
        at=1000.0,
        provider="claude",
        account="claude/a",
        model="m",
        conversation=None,
        status=200,
        attempts=2,
        failures=("claude/b: quota",),
        ttfb_ms=12.5,
        duration_ms=40.0,
        bytes=99,
        user="ann",
    )


def test_end_document_has_start_fields_and_outcome() -> None:
    """An end document carries the start's fields (path included) plus the ledger row's."""
    start = start_document(7, 1000.0, "claude", "ann", None, "/v1/messages")
    end = end_document(start, _row())
    assert end["id"] == 7
    assert end["path"] == "/v1/messages"
    assert end["model"] == "m"
    assert end["account"] == "claude/a"
    assert end["failures"] == ["claude/b: quota"]
    assert (end["status"], end["attempts"], end["bytes"]) == (200, 2, 99)


def test_publish_without_subscribers_keeps_recent_ends_newest_first() -> None:
    """Only "end" documents are kept, newest first, at most ``keep`` of them."""
    feed = LiveFeed(keep=3)
    for i in range(5):
        feed.publish("start", {"id": i})
        feed.publish("end", {"id": i})
    assert [d["id"] for d in feed.recent(10)] == [4, 3, 2]
    assert [d["id"] for d in feed.recent(1)] == [4]
    assert feed.recent(0) == []


async def test_recent_ends_read_the_same_whether_or_not_a_page_watched() -> None:
    """An end nobody watched is kept and reads as the document a subscriber would have got."""
    tally = Tally("claude", 1000.0, 5.0, model="m", account="claude/a", status=200, path="/v1/x")
    row = _row()
    quiet, watched = LiveFeed(), LiveFeed()
    quiet.ended(tally, row)
    async with watched.subscribe() as sub:
        watched.ended(tally, row)
        assert await sub.receive() == ("end", end_document(start_of(tally), row))
    assert quiet.recent(5) == watched.recent(5) == [end_document(start_of(tally), row)]


async def test_subscriber_gets_events_in_order() -> None:
    """A subscriber receives every event published while subscribed, in order."""
    feed = LiveFeed()
    async with feed.subscribe() as sub:
        assert feed.subscribers == 1
        feed.publish("start", {"id": 1})
        feed.publish("end", {"id": 1})
        got = [await sub.receive(), await sub.receive()]
    assert got == [("start", {"id": 1}), ("end", {"id": 1})]
    assert feed.subscribers == 0


async def test_slow_subscriber_loses_events_and_they_are_counted() -> None:
    """A full buffer never blocks publish: the overflow is dropped and counted."""
    feed = LiveFeed(buffer=2)
    async with feed.subscribe() as slow, feed.subscribe() as fast:
        for i in range(5):
            feed.publish("start", {"id": i})
            if i < 2:
                assert (await fast.receive())[1]["id"] == i
        assert slow.dropped == 3
        assert fast.dropped == 1  # it read two, then stopped reading at 2 buffered
        assert feed.dropped == 4
        assert [(await slow.receive())[1]["id"] for _ in range(2)] == [0, 1]


async def test_stopped_subscription_ends_after_draining() -> None:
    """stop() ends iteration once the buffered events have been read."""
    feed = LiveFeed()
    async with feed.subscribe() as sub:
        feed.publish("end", {"id": 1})
        sub.stop()
        feed.publish("end", {"id": 2})  # the stopped subscriber is dropped, not an error
        assert [doc["id"] async for _kind, doc in sub] == [1]
    assert feed.subscribers == 0


async def _read_until(stream: trio.SocketStream, buffer: bytearray, marker: bytes) -> None:
    with trio.fail_after(TIMEOUT_S):
        while marker not in buffer:
            data = await stream.receive_some(65536)
            assert data, f"connection closed before {marker!r}"
            buffer += data


async def test_relay_live_streams_events_pings_and_ends_on_shutdown() -> None:
    """GET /api/live is text/event-stream with one event per publish and ping comments;
    it ends cleanly (last chunk) as soon as shutdown begins."""
    feed = LiveFeed()
    shutdown = Shutdown()

    async def handler(ex: Exchange) -> None:
        await relay_live(ex, feed, shutdown, ping_s=0.05)

    async with serving(handler, shutdown) as base:
        port = int(base.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(b"GET /api/live HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            got = bytearray()
            await _read_until(stream, got, b": connected")
            assert b"content-type: text/event-stream" in got.lower()
            with trio.fail_after(TIMEOUT_S):
                while feed.subscribers == 0:
                    await trio.sleep(0.001)
            feed.publish("start", {"id": 1, "provider": "codex"})
            await _read_until(stream, got, b"event: start\ndata: ")
            line = got.split(b"event: start\ndata: ", 1)[1].split(b"\n", 1)[0]
            assert json.loads(line) == {"id": 1, "provider": "codex"}
            await _read_until(stream, got, b": ping")
            shutdown.begin(grace_s=30.0)
            await _read_until(stream, got, b"\r\n0\r\n\r\n")
        assert feed.subscribers == 0


async def test_relay_live_unsubscribes_when_client_leaves() -> None:
    """A client hang-up ends the stream and removes its subscription."""
    feed = LiveFeed()
    shutdown = Shutdown()

    async def handler(ex: Exchange) -> None:
        await relay_live(ex, feed, shutdown)

    async with serving(handler, shutdown) as base:
        port = int(base.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /api/live HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        await _read_until(stream, bytearray(), b": connected")
        await stream.aclose()
        with trio.fail_after(TIMEOUT_S):
            while feed.subscribers:
                await trio.sleep(0.001)
