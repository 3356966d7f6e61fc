"""Scripted Codex turns as the real Responses stream (protocols.md §1.7, translation.md §3).

Event order and shapes follow the backend: ``response.created``, ``response.in_progress``,
then per output item ``response.output_item.added`` … ``response.output_item.done``:

* reasoning: ``reasoning_summary_part.added``, ``reasoning_summary_text.delta``…,
  ``reasoning_summary_text.done``, ``reasoning_summary_part.done`` per summary part; the
  ``encrypted_content`` only in ``output_item.done`` (it is final only there, CPA#2332);
* function_call: ``function_call_arguments.delta``…, ``function_call_arguments.done``;
  with ``interleave_calls`` consecutive calls are all added first and their deltas
  alternate (the translator must still write one block at a time, T27);
* custom_tool_call: ``custom_tool_call_input.delta``…, ``custom_tool_call_input.done``;
* message: ``content_part.added``, ``output_text.delta``…, ``output_text.done``,
  ``content_part.done``;

and the end: ``response.completed`` (``output`` = every done item, ``usage`` with
``input_tokens_details.cached_tokens`` and ``output_tokens_details.reasoning_tokens``),
``response.incomplete`` (``incomplete_details.reason``) or ``response.failed``
(``response.error``). Every event carries ``sequence_number``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trio_pool.server.connection import Exchange
from trio_pool.testing import wire
from trio_pool.testing.accounts import SimAccount
from trio_pool.testing.faults import input_tokens
from trio_pool.testing.turns import (
    CustomToolCall,
    FunctionCall,
    HttpError,
    Message,
    Reasoning,
    Turn,
    split,
)

Event = dict[str, Any]
# (item id, given encrypted_content) -> the encrypted_content the account issues
Issuer = Callable[[str, str | None], str]


def conversation_of(request: dict[str, Any], session_header: str | None) -> str | None:
    """What identifies a Codex conversation: ``prompt_cache_key``, else ``session-id``."""
    key = request.get("prompt_cache_key")
    if isinstance(key, str) and key:
        return key
    return session_header or None


def response_object(
    resp_id: str, model: str, created: int, status: str, **extra: Any
) -> dict[str, Any]:
    return {
        "id": resp_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": [],
        "error": None,
        "incomplete_details": None,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None,
        **extra,
    }


class _Builder:
    """The events of one turn, numbered as they are added."""

    def __init__(self, turn: Turn, base: str, issue: Issuer) -> None:
        self.turn = turn
        self.base = base  # the response id without "resp_": unique per turn
        self.issue = issue
        self.events: list[Event] = []
        self.done: list[dict[str, Any]] = []  # output items in order

    def add(self, kind: str, **payload: Any) -> None:
        self.events.append({"type": kind, "sequence_number": len(self.events), **payload})

    def item_id(self, prefix: str, given: str | None, index: int) -> str:
        return given or f"{prefix}_{self.base}_{index}"

    def call_id(self, given: str | None, index: int) -> str:
        return given or f"call_{self.base}_{index}"

    # -- items ------------------------------------------------------------------------

    def reasoning(self, index: int, item: Reasoning) -> None:
        rs_id = self.item_id("rs", item.id, index)
        self.add(
            "response.output_item.added",
            output_index=index,
            item={"id": rs_id, "type": "reasoning", "summary": []},
        )
        at = {"item_id": rs_id, "output_index": index}
        for n, text in enumerate(item.summary):
            empty = {"type": "summary_text", "text": ""}
            self.add("response.reasoning_summary_part.added", **at, summary_index=n, part=empty)
            for piece in split(text, self.turn.deltas):
                self.add(
                    "response.reasoning_summary_text.delta", **at, summary_index=n, delta=piece
                )
            self.add("response.reasoning_summary_text.done", **at, summary_index=n, text=text)
            part = {"type": "summary_text", "text": text}
            self.add("response.reasoning_summary_part.done", **at, summary_index=n, part=part)
        done = {
            "id": rs_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": t} for t in item.summary],
            "encrypted_content": self.issue(rs_id, item.encrypted_content),
        }
        self.finish(index, done)

    def call_items(self, index: int, item: FunctionCall | CustomToolCall) -> dict[str, Any]:
        if isinstance(item, FunctionCall):
            return {
                "id": self.item_id("fc", item.id, index),
                "type": "function_call",
                "status": "in_progress",
                "arguments": "",
                "call_id": self.call_id(item.call_id, index),
                "name": item.name,
            }
        return {
            "id": self.item_id("ctc", item.id, index),
            "type": "custom_tool_call",
            "status": "in_progress",
            "call_id": self.call_id(item.call_id, index),
            "name": item.name,
            "input": "",
        }

    def calls(self, first: int, calls: list[FunctionCall | CustomToolCall]) -> None:
        """One call, or a run of calls with their deltas interleaved."""
        pending = [self.call_items(first + n, call) for n, call in enumerate(calls)]
        texts = [c.arguments if isinstance(c, FunctionCall) else c.input for c in calls]
        pieces = [split(text, self.turn.deltas) for text in texts]
        for n, item in enumerate(pending):
            self.add("response.output_item.added", output_index=first + n, item=item)
        for step in range(max(len(p) for p in pieces)):
            for n, item in enumerate(pending):
                if step < len(pieces[n]):
                    self._call_delta(first + n, item, pieces[n][step])
        for n, item in enumerate(pending):
            at = {"item_id": item["id"], "output_index": first + n}
            if item["type"] == "function_call":
                self.add("response.function_call_arguments.done", **at, arguments=texts[n])
                self.finish(first + n, {**item, "status": "completed", "arguments": texts[n]})
            else:
                self.add("response.custom_tool_call_input.done", **at, input=texts[n])
                self.finish(first + n, {**item, "status": "completed", "input": texts[n]})

    def _call_delta(self, index: int, item: dict[str, Any], piece: str) -> None:
        kind = (
            "response.function_call_arguments.delta"
            if item["type"] == "function_call"
            else "response.custom_tool_call_input.delta"
        )
        self.add(kind, item_id=item["id"], output_index=index, delta=piece)

    def message(self, index: int, item: Message) -> None:
        msg_id = self.item_id("msg", item.id, index)
        pending = {"id": msg_id, "type": "message", "role": "assistant", "status": "in_progress"}
        self.add("response.output_item.added", output_index=index, item={**pending, "content": []})
        at = {"item_id": msg_id, "output_index": index, "content_index": 0}
        part: dict[str, Any] = {"type": "output_text", "text": "", "annotations": []}
        self.add("response.content_part.added", **at, part=part)
        for piece in split(item.text, self.turn.deltas):
            self.add("response.output_text.delta", **at, delta=piece, logprobs=[])
        self.add("response.output_text.done", **at, text=item.text, logprobs=[])
        full = {**part, "text": item.text}
        self.add("response.content_part.done", **at, part=full)
        self.finish(index, {**pending, "status": "completed", "content": [full]})

    def finish(self, index: int, item: dict[str, Any]) -> None:
        self.add("response.output_item.done", output_index=index, item=item)
        self.done.append(item)


def turn_events(
    turn: Turn, *, resp_id: str, model: str, created: int, body_size: int, issue: Issuer
) -> list[Event]:
    """Every event of ``turn`` in order (before ``drop_first_events`` is applied)."""
    build = _Builder(turn, resp_id.removeprefix("resp_"), issue)
    first = response_object(resp_id, model, created, "in_progress")
    build.add("response.created", response=first)
    build.add("response.in_progress", response=first)
    items = list(turn.items)
    index = 0
    while index < len(items):
        item = items[index]
        if isinstance(item, Reasoning):
            build.reasoning(index, item)
        elif isinstance(item, Message):
            build.message(index, item)
        else:
            run: list[FunctionCall | CustomToolCall] = [item]
            while turn.interleave_calls and index + len(run) < len(items):
                following = items[index + len(run)]
                if not isinstance(following, FunctionCall | CustomToolCall):
                    break
                run.append(following)
            build.calls(index, run)
            index += len(run)
            continue
        index += 1
    if turn.end == "failed":
        error = {"code": "server_error", "message": "The simulated turn failed.", **turn.error}
        failed = response_object(resp_id, model, created, "failed", error=error)
        build.add("response.failed", response=failed)
        return build.events
    usage = _usage(turn, build.done, body_size)
    if turn.end == "incomplete":
        details = {"reason": turn.incomplete_reason}
        final = response_object(
            resp_id, model, created, "incomplete",
            output=build.done, usage=usage, incomplete_details=details,
        )  # fmt: skip
        build.add("response.incomplete", response=final)
    else:
        final = response_object(
            resp_id, model, created, "completed", output=build.done, usage=usage
        )
        build.add("response.completed", response=final)
    return build.events


def _usage(turn: Turn, done: list[dict[str, Any]], body_size: int) -> dict[str, Any]:
    scripted = turn.usage
    n_in = scripted.input_tokens or input_tokens(body_size)
    chars = sum(len(wire.dumps(item)) for item in done)
    n_out = scripted.output_tokens or max(1, chars // 16)
    return {
        "input_tokens": n_in,
        "input_tokens_details": {"cached_tokens": scripted.cached_tokens},
        "output_tokens": n_out,
        "output_tokens_details": {"reasoning_tokens": scripted.reasoning_tokens},
        "total_tokens": n_in + n_out,
    }


def http_error_body(error: HttpError, account: SimAccount) -> dict[str, Any]:
    """The Codex body of a scripted HTTP error (``usage_limit_reached`` as protocols.md
    §1.6 shows it, older bodies' ``resets_in_seconds`` only when scripted)."""
    body: dict[str, Any] = {"type": error.type, "message": error.message}
    if error.type in ("usage_limit_reached", "usage_not_included"):
        body["plan_type"] = account.plan
    else:
        body.update(code=error.type, param=None)
    if error.resets_in_seconds is not None:
        body["resets_in_seconds"] = error.resets_in_seconds
    return {"error": body}


async def reply(
    ex: Exchange,
    turn: Turn,
    *,
    account: SimAccount,
    headers: list[tuple[str, str]],
    resp_id: str,
    model: str,
    now: float,
    body_size: int,
    issue: Issuer,
) -> None:
    """Answer one HTTP request with ``turn`` (``headers``: the rate-limit headers)."""
    if turn.http_error is not None:
        error = turn.http_error
        resets = error.resets_in_seconds
        extra = [] if resets is None else [("retry-after", str(resets))]
        await wire.respond_json(
            ex, error.status, http_error_body(error, account), [*headers, *extra]
        )
        return
    events = turn_events(
        turn, resp_id=resp_id, model=model, created=int(now), body_size=body_size, issue=issue
    )
    chunks = [wire.sse(e["type"], wire.dumps(e)) for e in events[turn.drop_first_events :]]
    sent = [*wire.SSE_HEADERS, ("x-request-id", resp_id), ("openai-model", model), *headers]
    await ex.start_response(200, sent)
    await ex.send_chunks(chunks)
    await ex.end()
