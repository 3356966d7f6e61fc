"""Relaying an upstream response to the client as it arrives.

Each upstream read is written to the client at once, in one write (never one write per SSE
event, never held back); the provider's observer parses usage and in-band errors from the
same bytes afterwards. A failure after the first byte cannot be retried: the client's stream
is ended with the provider's in-stream error event, never a bare cut.
"""

from __future__ import annotations

import logging

import attrs

from trio_pool.errors import UpstreamError
from trio_pool.providers.base import (
    ErrorShape,
    Outcome,
    OutcomeKind,
    QuotaReading,
    StreamEvent,
    StreamObserver,
    TokenUsage,
)
from trio_pool.providers.observe import is_event_stream_type
from trio_pool.server.connection import Exchange
from trio_pool.server.messages import Headers, end_to_end
from trio_pool.server.server import Shutdown
from trio_pool.upstream.client import UpstreamResponse

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class RelayResult:
    """What the relay saw, for the pool and the ledger."""

    outcome: Outcome
    usage: TokenUsage | None = None
    quota: QuotaReading | None = None
    bytes_sent: int = 0
    complete: bool = False
    pin: str | None = None  # see StreamEvent.pin

    def apply(self, event: StreamEvent) -> None:
        """What one observed stream event tells (the last reading of each kind wins)."""
        if event.pin is not None:
            self.pin = event.pin
        if event.usage is not None:
            self.usage = event.usage
        if event.quota is not None:
            self.quota = event.quota
        if event.failure is not None:
            self.outcome = event.failure
        if event.complete:
            self.complete = True


def response_headers(headers: Headers) -> list[tuple[str, str]]:
    """Upstream response headers as we pass them on: hop-by-hop dropped.

    Content-Length stays when the upstream sent one (the client gets the same framing);
    otherwise h11 frames the body as chunked.
    """
    return list(end_to_end(headers))


def _framing_of(headers: Headers) -> tuple[bool, bool]:
    """(an SSE stream, a declared Content-Length), in one pass over the headers."""
    sse = length = typed = False
    for key, value in headers:
        if key == "content-type" and not typed:  # the first one counts
            typed = True
            sse = is_event_stream_type(value)  # as the observer reads it
        elif key == "content-length":
            length = True
    return sse, length


async def relay_response(
    exchange: Exchange,
    response: UpstreamResponse,
    provider: ErrorShape,
    observer: StreamObserver,
    shutdown: Shutdown,
    result: RelayResult,
    *,
    extra_headers: list[tuple[str, str]] | None = None,
) -> None:
    """Relay into ``result``, which the caller owns, so that what was seen before a client
    hang-up (cancellation) is still there for the pool and the log.

    Writes: the head goes out at once with the body bytes that came with it; the read
    that completes the body goes out with the end of the message. A small answer that
    arrived whole is one write; a stream is one write per upstream read.
    """
    # With a declared length nothing can be appended: a failure must end the body broken.
    sse, declared_length = _framing_of(response.headers)
    can_append = not declared_length
    headers = [*response_headers(response.headers), *(extra_headers or [])]
    body = response.iter_chunks()
    last = b""  # the read that completed the body: written with the end
    failure: str | None = None
    cut_at_shutdown = False
    try:
        first = body.take_buffered()
        whole = body.at_end()
    except UpstreamError as exc:
        first, whole = b"", True
        failure = _stream_failed(result, response.status, exc)
    if whole:
        # The whole body came with the head (most small answers): nothing to wait for, so
        # no scope for the shutdown to cut.
        last = first
    else:
        with shutdown.stream_scope() as scope:
            try:
                await exchange.start_response(response.status, headers, first)
                if first:
                    _sent(result, observer, first)
                async for chunk in body:
                    if body.at_end():
                        last = chunk
                        break
                    await exchange.send(chunk)
                    _sent(result, observer, chunk)
            except UpstreamError as exc:
                failure = _stream_failed(result, response.status, exc)
        cut_at_shutdown = scope.cancelled_caught
    if last:
        # Observed before its write (so the end can go with it), counted as sent with it.
        _sent(result, observer, last)
    if cut_at_shutdown:
        failure = "trio-pool is shutting down; the stream was cut at the shutdown deadline"
    else:
        event = observer.finish()
        if event is not None:
            result.apply(event)
    if failure is None and sse and not result.complete and response.status < 300:
        # The upstream closed cleanly but without its terminal event: the CLIs would either
        # retry the whole request or print nothing, so say what happened in-band.
        failure = "the upstream stream ended before its final event"
        result.outcome = Outcome(OutcomeKind.TRANSIENT, response.status, reason="truncated stream")
    if failure is not None:
        log.warning("relay.stream.failed reason=%s", failure)
        if sse and can_append:
            last += provider.stream_error_event(failure, kind="upstream_error")
        else:
            # A non-SSE body has no in-band error form: end it broken so the client can tell.
            if not exchange.response_started:
                await exchange.start_response(response.status, headers, last)
            else:
                await exchange.send(last)
            return
    if exchange.response_started:
        await exchange.end(last)
    else:
        await exchange.start_response(response.status, headers, last, end=True)


def _stream_failed(result: RelayResult, status: int, exc: UpstreamError) -> str:
    """The relay's reason when the upstream body broke; the try becomes a transient failure."""
    result.outcome = Outcome(OutcomeKind.TRANSIENT, status, reason=str(exc))
    return f"the upstream stream failed: {exc}"


def _sent(result: RelayResult, observer: StreamObserver, chunk: bytes) -> None:
    result.bytes_sent += len(chunk)
    event = observer.feed(chunk)
    if event is not None:
        result.apply(event)
