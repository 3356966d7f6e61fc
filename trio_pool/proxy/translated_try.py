"""One account's try of a translated request: the upstream's answer in the client's format.

```
send -> prepare (upstream provider, the translated body) -> upstream
     -> non-2xx: classify -> fail over | the error in the client's shape
     -> 2xx: parse SSE -> the stream machine -> hold until the first content event
             -> a retryable failure or an early end while held: fail over (§0.6)
             -> then every upstream read goes out as one client write
```
The observer still reads the upstream's native bytes, so usage, quota and in-band
failures reach the pool and the ledger as for a native request. A ``stream: false`` client
is held to the end (Codex only streams) and answered with one JSON body, so it can fail
over at any point before that.
"""

from __future__ import annotations

import json
import logging
import math

import attrs
import trio

from trio_pool import clock
from trio_pool.accounts.model import AccountView
from trio_pool.accounts.pool import Lease
from trio_pool.credentials.registry import PoolAccount
from trio_pool.errors import UpstreamError
from trio_pool.providers.base import (
    Credentials,
    Outcome,
    OutcomeKind,
    StreamObserver,
)
from trio_pool.providers.sse import SseEventTooLarge, SseParser
from trio_pool.providers.wire import header_map, json_value
from trio_pool.proxy import answers
from trio_pool.proxy.attempt_loop import Request
from trio_pool.proxy.attempts import FailOver, GiveUp, PassOn, RefreshAndRetry
from trio_pool.proxy.relay import RelayResult
from trio_pool.proxy.translation_plan import Assembler, StreamMachine, Translation
from trio_pool.translate import errors, sse
from trio_pool.translate.errors import JsonReply
from trio_pool.upstream.client import UpstreamResponse

log = logging.getLogger(__name__)

# Upstream silence after which a translated Messages stream gets `event: ping` (§3.1):
# Codex can think for minutes before its first delta, and ping is allowed anywhere.
PING_AFTER_S = 15.0
# A whole output item (a long answer, a large file's arguments) comes in one event.
MAX_EVENT_BYTES = 64 * 1024 * 1024
_OWN_HEADERS = ("accept-encoding", "content-length", "transfer-encoding")
_SSE_HEADERS = [("content-type", "text/event-stream"), ("cache-control", "no-cache")]
# The upstream refused reasoning another account issued (a pin lost): resend without it.
_FOREIGN_REASONING = b"invalid_encrypted_content"


@attrs.define(eq=False)
class _Pump:
    """One upstream answer's way to the client: the stream machine, what is held back, and
    whether the client's response has begun (after which no failover is possible)."""

    machine: StreamMachine
    assembler: Assembler | None  # a stream: false client
    held: list[sse.OutEvent] = attrs.field(factory=list)
    content: bool = False  # a content event arrived: a streaming client hears it all now
    upstream_error: UpstreamError | None = None


@attrs.define(eq=False)
class TranslatedTry:
    """A translated request's tries (``proxy.attempt_loop.Transport``)."""

    request: Request
    translation: Translation
    issuer: str | None = None  # the account that issued the reasoning the body replays
    lean: bool = False  # send without replayed reasoning even to the issuer

    async def give_up(self, give_up: GiveUp) -> None:
        request = self.request
        now = clock.now()
        if (
            give_up.status == 429
            and request.route.client_format == "responses"
            and out_of_quota(request.services.pool.accounts(now, request.provider.name))
        ):
            # Codex CLI on Claude accounts: the pool out of quota in Codex's own words (an
            # overloaded pool keeps the plain 429: "usage limit" would be untrue).
            reply = errors.pool_quota_for_codex(give_up.message, give_up.retry_after_s, now)
            body = json.dumps(reply.body, separators=(",", ":")).encode()
            await request.exchange.respond(reply.status, list(reply.headers), body)
            answers.log_done(request.exchange.head, reply.status, None)
            request.tally.status = reply.status
            return
        request.tally.status = await answers.send_give_up(request.exchange, request.shape, give_up)

    def _body(self, account: str) -> bytes:
        t = self.translation
        if t.body_without_reasoning is not None and (self.lean or account != self.issuer):
            return t.body_without_reasoning
        return t.body

    async def send(
        self, lease: Lease, account: PoolAccount, credentials: Credentials
    ) -> FailOver | RefreshAndRetry | None:
        request, t = self.request, self.translation
        exchange, tally = request.exchange, request.tally
        body = self._body(account.name)
        prepared = request.provider.prepare(
            request.route, t.head, body, credentials, fast=lease.fast
        )
        headers = [(k, v) for k, v in prepared.headers if k not in _OWN_HEADERS]
        headers.append(("accept-encoding", "identity"))  # the SSE is parsed as it passes
        started = trio.current_time()
        client = request.services.client
        try:
            async with client.stream(
                prepared.method, prepared.url, headers, prepared.body
            ) as response:
                tally.ttfb_s = trio.current_time() - tally.started
                if not 200 <= response.status < 300:
                    error_body = await response.read_all()
                    if (
                        response.status == 400
                        and _FOREIGN_REASONING in error_body
                        and body is not t.body_without_reasoning
                    ):
                        log.info("translate.reasoning.dropped account=%s", account.name)
                        self.lean = True
                        return await self.send(lease, account, credentials)
                    return await self._refused(lease, account, response, error_body, started)
                return await self._answer(lease, account, response, started)
        except UpstreamError as exc:
            if exchange.response_started:
                raise
            return await request.upstream_failed(lease, account.name, exc)

    async def _refused(
        self,
        lease: Lease,
        account: PoolAccount,
        response: UpstreamResponse,
        error_body: bytes,
        started: float,
    ) -> FailOver | RefreshAndRetry | None:
        """A non-2xx answer: fail over, refresh, or the error in the client's shape."""
        request = self.request
        verdict = request.refused(lease, response.status, response.headers, error_body)
        if verdict is not None:
            return verdict
        fields = header_map(response.headers)
        reply = self.translation.error_reply(
            response.status, json_value(error_body), fields, clock.now()
        )
        await self._send_reply(account, reply)
        request.tally.bytes = len(error_body)
        answers.log_done(request.exchange.head, reply.status, started)
        return None

    async def _send_reply(self, account: PoolAccount, reply: JsonReply) -> None:
        request = self.request
        body = json.dumps(reply.body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [*reply.headers, *request.account_headers(account.name)]
        await request.exchange.respond(reply.status, headers, body)
        request.tally.status = reply.status

    async def _answer(
        self, lease: Lease, account: PoolAccount, response: UpstreamResponse, started: float
    ) -> FailOver | RefreshAndRetry | None:
        request, t = self.request, self.translation
        result = request.relay_starts(account.name, response.status, response.headers)
        observer = request.provider.observer(t.head, response.headers, clock.now())
        pump = _Pump(t.new_machine(), None if t.client_stream else t.new_assembler())
        verdict: FailOver | RefreshAndRetry | None = None
        try:
            verdict = await self._pump(lease, account, response, observer, result, pump)
            return verdict
        finally:
            # Also after a client hang-up: tokens already spent are counted. A failover's
            # lease is reported by the attempt loop with the failure.
            if verdict is None:
                status = request.tally.status or response.status
                request.relay_ended(lease, account.name, status, started, result)

    async def _pump(
        self,
        lease: Lease,
        account: PoolAccount,
        response: UpstreamResponse,
        observer: StreamObserver,
        result: RelayResult,
        pump: _Pump,
    ) -> FailOver | RefreshAndRetry | None:
        request, t = self.request, self.translation
        exchange = request.exchange
        parser = SseParser(max_event_bytes=MAX_EVENT_BYTES)
        ping_after = PING_AFTER_S if t.ping else math.inf
        # The upstream is read by its own task so that a silence can be timed without
        # cancelling a read in the middle (the body iterator cannot be resumed after that).
        send_chunks, chunks = trio.open_memory_channel[bytes](0)
        with request.services.shutdown.stream_scope() as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_upstream, response, send_chunks, pump)
                try:
                    async with chunks:
                        while True:
                            with trio.move_on_after(ping_after) as silence:
                                try:
                                    chunk = await chunks.receive()
                                except trio.EndOfChannel:
                                    break
                            if silence.cancelled_caught:
                                if exchange.response_started:
                                    await self._write(result, [sse.ping()])
                                continue
                            verdict = await self._chunk(
                                lease, chunk, observer, parser, result, pump
                            )
                            if verdict is not None:
                                return verdict
                finally:
                    nursery.cancel_scope.cancel()
        if scope.cancelled_caught:
            pump.upstream_error = UpstreamError("trio-pool is shutting down: the stream was cut")
        return await self._finish(lease, account, result, pump, observer)

    async def _read_upstream(
        self,
        response: UpstreamResponse,
        send_chunks: trio.MemorySendChannel[bytes],
        pump: _Pump,
    ) -> None:
        async with send_chunks:
            try:
                async for chunk in response.iter_chunks():
                    await send_chunks.send(chunk)
            except UpstreamError as exc:
                pump.upstream_error = exc

    async def _chunk(
        self,
        lease: Lease,
        chunk: bytes,
        observer: StreamObserver,
        parser: SseParser,
        result: RelayResult,
        pump: _Pump,
    ) -> FailOver | RefreshAndRetry | None:
        """One upstream read: observed natively, translated, and (unless held) written in
        one client write."""
        seen = observer.feed(chunk)
        if seen is not None:
            result.apply(seen)
        try:
            parsed = parser.feed(chunk)
        except SseEventTooLarge as exc:
            log.warning("translate.event.too_large reason=%s", exc)
            parsed = exc.events
        out: list[sse.OutEvent] = []
        holding = not pump.content
        for event in parsed:
            decoded = sse.decode(event.event, event.data)
            if holding:
                if errors.is_retryable_failure(decoded):
                    verdict = self._failed_while_held(lease, result, "failed before any content")
                    if verdict is not None:
                        return verdict
                elif not errors.is_handshake_event(decoded) and pump.assembler is None:
                    pump.content = holding = False
            out.extend(pump.machine.feed(decoded))
        if pump.assembler is not None:
            pump.assembler.add(out)
        elif holding:
            pump.held.extend(out)
        elif out:
            await self._write(result, out, pump)
        return None

    def _failed_while_held(
        self, lease: Lease, result: RelayResult, reason: str
    ) -> FailOver | RefreshAndRetry | None:
        """The client has heard nothing: another account may still answer (§0.6, T30)."""
        outcome = result.outcome
        if outcome.kind is OutcomeKind.OK:
            outcome = Outcome(OutcomeKind.TRANSIENT, outcome.status, reason=reason)
        verdict = self.request.plan.failed(lease, outcome, clock.now())
        return None if isinstance(verdict, PassOn) else verdict

    async def _write(
        self, result: RelayResult, events: list[sse.OutEvent], pump: _Pump | None = None
    ) -> None:
        request = self.request
        exchange = request.exchange
        if not exchange.response_started:
            account = request.tally.account or ""
            await exchange.start_response(200, [*_SSE_HEADERS, *request.account_headers(account)])
            request.tally.status = 200
        if pump is not None and pump.held:
            events, pump.held = [*pump.held, *events], []
        data = sse.encode_all(events)
        await exchange.send(data)
        result.bytes_sent += len(data)

    async def _finish(
        self,
        lease: Lease,
        account: PoolAccount,
        result: RelayResult,
        pump: _Pump,
        observer: StreamObserver,
    ) -> FailOver | RefreshAndRetry | None:
        """The upstream ended (or failed): end the client's answer, or fail over if the
        client has heard nothing and the answer is incomplete."""
        seen = observer.finish()
        if seen is not None:
            result.apply(seen)
        failure = pump.upstream_error
        if failure is not None:
            result.outcome = Outcome(OutcomeKind.TRANSIENT, result.outcome.status, str(failure))
            log.warning("relay.stream.failed reason=%s", failure)
        ended = pump.machine.ended
        if not ended and failure is None:
            reason = "the upstream stream ended before its final event"
            result.outcome = Outcome(OutcomeKind.TRANSIENT, result.outcome.status, reason=reason)
        if not ended and not self.request.exchange.response_started:
            verdict = self._failed_while_held(lease, result, "the upstream stream ended early")
            if verdict is not None:
                return verdict
        tail = pump.machine.finish()
        if pump.assembler is not None:
            pump.assembler.add(tail)
            await self._send_reply(account, pump.assembler.reply())
            return None
        await self._write(result, tail, pump)
        await self.request.exchange.end()
        return None


def out_of_quota(accounts: list[AccountView]) -> bool:
    """Every account that could serve is cooling until a quota reset (none merely backing
    off after a throttle or an error, none ok)."""
    states = {a.state for a in accounts}
    return "cooling" in states and not states & {"ok", "backoff"}
