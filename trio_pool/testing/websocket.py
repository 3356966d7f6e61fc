"""The simulator's WebSocket mode: Codex Responses over WebSocket (protocols.md §1.8).

Accepts the upgrade on any path ending in ``/responses`` after the same auth and quota checks
as HTTP (refusals are HTTP answers with the real bodies and ``x-codex-*`` headers). Each
``response.create`` is answered with the SSE path's events, one JSON text frame each
(``generate: false`` warm-ups get ``response.created`` + ``response.completed`` only), after
an optional ``codex.rate_limits`` frame (of the model's limit family when it has one, with
``metered_limit_name``); a model whose family is spent gets a 429 error frame with
``x-codex-active-limit`` naming the family. ``previous_response_id`` must name a response of
this socket (else ``previous_response_not_found``: the reason a socket must stay on one
account). After ``connection_limit_s`` the socket gets ``websocket_connection_limit_reached``
and is closed. Paths ending in ``/realtime`` get an echo socket (the generic pass-through).
"""

from __future__ import annotations

import json
import logging
import weakref
from collections import deque
from functools import lru_cache, partial
from typing import Any, Literal

import attrs
import trio

from trio_pool.server.connection import Exchange
from trio_pool.testing import (
    codex,
    codex_input_rules,
    codex_limits,
    codex_rules,
    codex_script,
    wire,
)
from trio_pool.testing.accounts import SimAccount
from trio_pool.testing.faults import SimConfig, input_tokens, output_tokens
from trio_pool.testing.state import SimState
from trio_pool.testing.turns import Turn
from trio_pool.upstream.websocket import Closed, WebSocket, adopt, handshake_problem

log = logging.getLogger(__name__)

# Error frames a test can queue for an account's next ``response.create``.
FrameFault = Literal["quota", "server_error", "previous_response_not_found"]
CONNECTION_LIMIT_S = 60 * 60.0


@attrs.define(eq=False)
class WsSim:
    """The WebSocket side of one simulator: settings, faults and counters."""

    connection_limit_s: float = CONNECTION_LIMIT_S
    rate_limit_frames: bool = True  # send codex.rate_limits before each response
    open_sockets: int = 0
    sockets_total: int = 0
    messages_in: int = 0
    frame_faults: dict[str, deque[FrameFault]] = attrs.field(factory=dict)
    # Close the socket of this account after its next response (code, reason).
    close_after_turn: dict[str, Closed] = attrs.field(factory=dict)

    _changed: trio.Event = attrs.field(factory=trio.Event, repr=False)

    def _count(self, delta: int) -> None:
        self.open_sockets += delta
        self.sockets_total += max(delta, 0)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_open(self, count: int) -> None:
        """Until exactly ``count`` sockets are open (tests bound this with fail_after)."""
        while self.open_sockets != count:
            await self._changed.wait()

    def force_frame(self, key: str, kind: FrameFault, count: int = 1) -> None:
        self.frame_faults.setdefault(key, deque()).extend([kind] * count)

    def take_frame_fault(self, key: str) -> FrameFault | None:
        queue = self.frame_faults.get(key)
        return queue.popleft() if queue else None


_SIMS: weakref.WeakKeyDictionary[SimState, WsSim] = weakref.WeakKeyDictionary()


def ws_sim(state: SimState) -> WsSim:
    """The WebSocket settings and counters of ``state``'s simulator (created on first use)."""
    if state not in _SIMS:
        _SIMS[state] = WsSim()
    return _SIMS[state]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _data(event: bytes) -> str:
    """The JSON of one pre-encoded SSE event."""
    start = event.index(b"data: ") + len(b"data: ")
    return event[start:].rstrip(b"\r\n").decode()


@lru_cache(maxsize=64)
def _frames(config: SimConfig) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The per-config middle of a reply (items and deltas) and its end, as JSON texts."""
    tpl = codex._template(config)
    middle = tuple(_data(e) for e in (*tpl.item_added, *tpl.deltas))
    return middle, tuple(_data(e) for e in tpl.item_done)


def error_frame(status: int, error: dict[str, Any], headers: list[tuple[str, str]]) -> str:
    return _dumps({"type": "error", "status": status, "error": error, "headers": dict(headers)})


def rate_limits_frame(account: SimAccount, now: float, model: str | None = None) -> str:
    """The ``codex.rate_limits`` frame before a turn for ``model`` (codex_limits)."""
    return _dumps(codex_limits.rate_limits_event(account, now, model))


def _fault_frame(
    kind: FrameFault, account: SimAccount, now: float, previous: str, model: str | None = None
) -> str:
    if kind == "quota":
        # The spent limit of the turn's model (its family's, if it has one), else the
        # account's most used window (a quota fault a test queued).
        window = codex_limits.blocking(account, now, model) or account.binding_window(now)
        body = codex.usage_limit_body(account, window, now)
        headers = codex_limits.rate_limit_headers(account, now, model)
        return error_frame(429, body["error"], headers)
    if kind == "server_error":
        error = {"type": "server_error", "message": "The simulator failed this turn on purpose."}
        return error_frame(500, error, [])
    error = {
        "type": "invalid_request_error",
        "code": "previous_response_not_found",
        "message": f"Previous response with id '{previous}' not found.",
        "param": "previous_response_id",
    }
    return error_frame(400, error, [])


async def handle(state: SimState, ex: Exchange) -> None:
    """Answer one WebSocket upgrade: refuse it as HTTP does, or serve the socket."""
    head = ex.head
    now = state.now()
    account = state.by_access("codex", wire.bearer(head))
    if account is None:
        state.unknown_token_requests += 1
        await wire.respond_json(ex, 401, {"error": codex.UNKNOWN_TOKEN})
        return
    account.record(head.path, head.headers, b"")
    if account.expired(now):
        await wire.respond_json(ex, 401, {"error": codex.EXPIRED})
        return
    if head.get("chatgpt-account-id") != account.account_id:
        error = {"message": "ChatGPT-Account-ID does not match", "code": "account_mismatch"}
        await wire.respond_json(ex, 403, {"error": error})
        return
    kind = account.take_forced()
    if kind is not None:
        await codex._fault(ex, account, kind, now)
        return
    blocking = codex_limits.blocking(account, now, None)
    if blocking is not None:
        body = codex.usage_limit_body(account, blocking, now)
        await wire.respond_json(ex, 429, body, codex_limits.rate_limit_headers(account, now))
        return
    problem = handshake_problem(head)
    if problem is not None:
        error = {"message": problem, "type": "invalid_request_error", "code": "upgrade_required"}
        await wire.respond_json(ex, 426, {"error": error})
        return
    sim = ws_sim(state)
    stream, trailing = ex.detach()
    try:
        async with trio.open_nursery() as nursery:
            headers = codex_limits.rate_limit_headers(account, now)
            ws = await adopt(nursery, stream, head, trailing, headers=headers)
            if ws is None:
                return
            sim._count(1)
            try:
                with trio.move_on_after(sim.connection_limit_s) as limit:
                    if head.path.rstrip("/").endswith("/realtime"):
                        await _echo(sim, ws)
                    else:
                        await _serve(state, sim, ws, account, ex)
                if limit.cancelled_caught:
                    error = {
                        "type": "invalid_request_error",
                        "code": "websocket_connection_limit_reached",
                        "message": "Responses websocket connection limit reached (60 minutes).",
                    }
                    await ws.send(error_frame(400, error, []))
                    await ws.close(Closed(1000, "connection limit reached"))
            finally:
                sim._count(-1)
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)


async def _echo(sim: WsSim, ws: WebSocket) -> None:
    while not isinstance(message := await ws.receive(), Closed):
        sim.messages_in += 1
        await ws.send(message)


async def _serve(
    state: SimState, sim: WsSim, ws: WebSocket, account: SimAccount, ex: Exchange
) -> None:
    """Answer ``response.create`` messages until the client closes."""
    responses: set[str] = set()  # ids a later turn may chain from: this socket's only
    while True:
        message = await ws.receive()
        if isinstance(message, Closed):
            return
        sim.messages_in += 1
        if isinstance(message, bytes):
            await ws.close(Closed(1003, "binary frames are not supported"))
            return
        try:
            request = json.loads(message)
        except ValueError:
            request = None
        if not isinstance(request, dict) or request.get("type") != "response.create":
            continue  # response.processed acks and the like need no answer
        account.record(ex.head.path, ex.head.headers, message.encode())
        lite = codex_rules.is_lite(ex.head.get(codex_rules.LITE_HEADER), request)
        detail = codex_rules.body_refusal(
            request, lite=lite, websocket=True
        ) or codex_rules.plan_refusal(request.get("model"), account.plan)
        if detail is not None:
            # The HTTP answer's words, in an error frame (openai/codex#17642 shows the shape).
            error = {"type": "invalid_request_error", "message": detail}
            await ws.send(error_frame(400, error, []))
            continue
        issued = partial(state.scripts.issued_by, account.key)
        refusal = codex_input_rules.input_refusal(request, issued_by_account=issued)
        if refusal is not None:
            await ws.send(error_frame(refusal.status, refusal.body["error"], []))
            continue
        now = state.now()
        model = str(request.get("model") or codex.DEFAULT_MODEL)
        previous = str(request.get("previous_response_id") or "")
        fault = sim.take_frame_fault(account.key)
        if fault is None and previous and previous not in responses:
            fault = "previous_response_not_found"
        if fault is None and codex_limits.blocking(account, now, model) is not None:
            fault = "quota"
        if fault is not None:
            await ws.send(_fault_frame(fault, account, now, previous, model))
            continue
        if sim.rate_limit_frames:
            await ws.send(rate_limits_frame(account, now, model))
        session = ex.head.get("session-id") or ex.head.get("session_id")
        turn = state.scripts.take(
            "codex",
            account=account.key,
            conversation=codex_script.conversation_of(request, session),
            body=message.encode(),
        )
        if turn is not None:
            responses.add(await _scripted(state, ws, account, request, len(message), turn))
        else:
            responses.add(await _reply(state, ws, account, request, len(message)))
        closing = sim.close_after_turn.pop(account.key, None)
        if closing is not None:
            await ws.close(closing)
            return


async def _scripted(
    state: SimState,
    ws: WebSocket,
    account: SimAccount,
    request: dict[str, Any],
    size: int,
    turn: Turn,
) -> str:
    """A scripted turn's events as frames (an HTTP error as an error frame)."""
    now = state.now()
    resp_id = state.next_request_id("resp_sim")
    if turn.http_error is not None:
        error = codex_script.http_error_body(turn.http_error, account)["error"]
        await ws.send(error_frame(turn.http_error.status, error, []))
        return resp_id
    asked = str(request.get("model") or codex.DEFAULT_MODEL)
    codex_limits.charge(account, account.units_for(input_tokens(size), 1), now, asked)
    account.generations += 1
    model = state.config_for(account).model or asked
    events = codex_script.turn_events(
        turn,
        resp_id=resp_id,
        model=model,
        created=int(now),
        body_size=size,
        issue=partial(state.scripts.issue_encrypted, account.key),
    )
    for event in events[turn.drop_first_events :]:
        if not await ws.send(_dumps(event)):
            break
    return resp_id


async def _reply(
    state: SimState, ws: WebSocket, account: SimAccount, request: dict[str, Any], size: int
) -> str:
    """One response's events as frames; returns the response id."""
    now = state.now()
    config = state.config_for(account)
    asked = str(request.get("model") or codex.DEFAULT_MODEL)
    model = config.model or asked
    resp_id = state.next_request_id("resp_sim")
    generate = request.get("generate") is not False
    n_in, n_out = (input_tokens(size), output_tokens(config)) if generate else (0, 0)
    usage = {
        "input_tokens": n_in,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": n_out,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": n_in + n_out,
    }
    first = codex._response(resp_id, model, int(now), "in_progress")
    frames = [_dumps({"type": "response.created", "sequence_number": 0, "response": first})]
    output: list[Any] = []
    seq = 1
    if generate:
        codex_limits.charge(account, account.units_for(n_in, n_out), now, asked)
        account.generations += 1
        middle, end = _frames(config)
        progress = {"type": "response.in_progress", "sequence_number": 1, "response": first}
        frames += [_dumps(progress), *middle, *end]
        output = [codex._template(config).item]
        seq = codex._template(config).next_seq
    final = codex._response(resp_id, model, int(now), "completed", output=output, usage=usage)
    frames.append(_dumps({"type": "response.completed", "sequence_number": seq, "response": final}))
    delay = config.event_delay_s
    for i, frame in enumerate(frames):
        if i and delay > 0:
            await trio.sleep(delay)
        if not await ws.send(frame):
            break
    return resp_id
