"""Claude Code on Codex accounts: the Codex Responses stream as a Messages stream (§3).

Claude Code needs ``message_start`` (else it retries without streaming),
``content_block_stop`` (else it prints nothing and exits 0) and ``message_delta`` /
``message_stop`` (else "Connection lost mid-response") (real-clients.md §5), so
:meth:`finish` always ends the stream with a terminal event, even after an early EOF.

Codex items are written one at a time (:mod:`trio_pool.translate.item_order`).
"""

from __future__ import annotations

from typing import Any

import attrs

from trio_pool.translate.codex_events import (
    ITEM_EVENTS,
    STOP_REASONS,
    TERMINAL_EVENTS,
    messages_usage,
)
from trio_pool.translate.errors import codex_stream_error
from trio_pool.translate.fields import (
    as_dict,
    as_list,
    as_str,
    dig,
    dumps,
)
from trio_pool.translate.ids import ToolNames, derived_id
from trio_pool.translate.item_order import ItemOrder
from trio_pool.translate.signatures import encode_signature, summary_text
from trio_pool.translate.sse import Event, OutEvent, kind_of


@attrs.define
class _Block:
    index: int
    kind: str  # "text" | "thinking" | "tool_use"
    sent: str = ""  # text or arguments sent so far
    parts: int = 0  # reasoning summary parts seen


@attrs.define(eq=False)
class ResponsesToMessages:
    """Feed Codex events (``(name, data)``), write the returned Messages events."""

    client_model: str
    tool_names: ToolNames = attrs.field(factory=ToolNames)
    reasoning_replay: bool = True
    _out: list[OutEvent] = attrs.field(factory=list, init=False)
    _started: bool = attrs.field(default=False, init=False)
    _ended: bool = attrs.field(default=False, init=False)
    _response_id: str = attrs.field(default="", init=False)
    _next_index: int = attrs.field(default=0, init=False)
    _block: _Block | None = attrs.field(default=None, init=False)
    _order: ItemOrder = attrs.field(factory=ItemOrder, init=False)
    _seen_items: set[str] = attrs.field(factory=set, init=False)
    _tool_use: bool = attrs.field(default=False, init=False)

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, event: Event) -> list[OutEvent]:
        kind, data = kind_of(event), event[1]
        if self._ended or not isinstance(data, dict):
            return []
        if kind in ("response.created", "response.in_progress"):
            self._response_id = self._response_id or as_str(dig(data, "response", "id"))
            self._start()
        elif kind in ITEM_EVENTS:
            self._route(self._order.key(data), kind, data)
        elif kind in TERMINAL_EVENTS:
            self._terminal(kind, data)
        return self._take()

    def finish(self) -> list[OutEvent]:
        """The end of the upstream stream: a terminal sequence if none was written."""
        if not self._ended:
            self._close_block()
            self._error({"type": "api_error", "message": "the upstream stream ended early"})
        return self._take()

    # -- plumbing ---------------------------------------------------------------------

    def _take(self) -> list[OutEvent]:
        out, self._out = self._out, []
        return out

    def _emit(self, name: str, data: dict[str, Any]) -> None:
        if name != "error":
            self._start()
        self._out.append((name, data))

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        message: dict[str, Any] = {
            "id": derived_id("msg_", self._response_id),
            "type": "message",
            "role": "assistant",
            "model": self.client_model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        self._out.append(("message_start", {"type": "message_start", "message": message}))

    def _route(self, key: Any, kind: str, data: dict[str, Any]) -> None:
        if self._order.admit(key, kind, data):
            self._handle(key, kind, data)
            if self._order.active is None:
                self._drain(force=False)

    def _drain(self, *, force: bool) -> None:
        """Replay the waiting items in order while each one completes; with ``force``
        (the stream is over) also close the ones that never will."""
        while (waiting := self._order.next_waiting()) is not None:
            key, events = waiting
            for kind, data in events:
                if self._order.active == key:
                    self._handle(key, kind, data)
            if self._order.active == key:
                if not force:
                    return
                self._close_block()
                self._order.close(key)

    def _open(self, kind: str, content_block: dict[str, Any]) -> _Block:
        self._close_block()
        block = _Block(self._next_index, kind)
        self._next_index += 1
        self._block = block
        self._emit(
            "content_block_start",
            {"type": "content_block_start", "index": block.index, "content_block": content_block},
        )
        return block

    def _ensure(self, kind: str, content_block: dict[str, Any]) -> _Block:
        if self._block is not None and self._block.kind == kind:
            return self._block
        return self._open(kind, content_block)

    def _delta(self, delta: dict[str, Any]) -> None:
        assert self._block is not None
        index = self._block.index
        self._emit(
            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        )

    def _close_block(self) -> None:
        if self._block is not None:
            index, self._block = self._block.index, None
            self._emit("content_block_stop", {"type": "content_block_stop", "index": index})

    # -- items ------------------------------------------------------------------------

    def _handle(self, key: Any, kind: str, data: dict[str, Any]) -> None:
        item = as_dict(data.get("item"))
        if kind == "response.output_item.added":
            self._added(item)
        elif kind == "response.output_item.done":
            self._done(item)
            self._order.close(key)
        elif kind == "response.content_part.added":
            if as_dict(data.get("part")).get("type") in ("output_text", "refusal"):
                self._ensure("text", {"type": "text", "text": ""})
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            self._text(as_str(data.get("delta")))
        elif kind == "response.reasoning_summary_part.added":
            block = self._ensure("thinking", {"type": "thinking", "thinking": ""})
            block.parts += 1
            if block.parts > 1:
                self._delta({"type": "thinking_delta", "thinking": "\n\n"})
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            delta = as_str(data.get("delta"))
            block = self._ensure("thinking", {"type": "thinking", "thinking": ""})
            if delta:
                block.sent += delta
                self._delta({"type": "thinking_delta", "thinking": delta})
        elif kind.startswith("response.function_call_arguments.") and self._in_tool():
            final = kind.endswith(".done")
            self._arguments(as_str(data.get("arguments" if final else "delta")), final=final)

    def _in_tool(self) -> bool:
        return self._block is not None and self._block.kind == "tool_use"

    def _added(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if as_str(item.get("id")):
            self._seen_items.add(item["id"])
        if kind == "message":
            self._ensure("text", {"type": "text", "text": ""})
        elif kind in ("function_call", "custom_tool_call"):
            self._open_tool(item)

    def _open_tool(self, item: dict[str, Any]) -> None:
        name = self.tool_names.original(as_str(item.get("name")))
        call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
        self._tool_use = True
        self._open("tool_use", {"type": "tool_use", "id": call_id, "name": name, "input": {}})
        self._delta({"type": "input_json_delta", "partial_json": ""})

    def _text(self, delta: str) -> None:
        block = self._ensure("text", {"type": "text", "text": ""})
        if delta:
            block.sent += delta
            self._delta({"type": "text_delta", "text": delta})

    def _arguments(self, text: str, *, final: bool) -> None:
        assert self._block is not None
        block = self._block
        if final:
            # Only what the deltas did not already send (all of it when there were none).
            if not text.startswith(block.sent):
                return
            text = text[len(block.sent) :]
        if text:
            block.sent += text
            self._delta({"type": "input_json_delta", "partial_json": text})

    def _done(self, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if as_str(item.get("id")):
            self._seen_items.add(item["id"])
        if kind == "message":
            block = self._ensure("text", {"type": "text", "text": ""})
            if not block.sent:
                texts = [
                    as_str(as_dict(p).get("text")) or as_str(as_dict(p).get("refusal"))
                    for p in as_list(item.get("content"))
                ]
                self._text("".join(texts))
            self._close_block()
        elif kind == "reasoning":
            summary = summary_text(item)
            encrypted = as_str(item.get("encrypted_content"))
            replay = self.reasoning_replay and bool(encrypted)
            if (
                not replay
                and not summary
                and (self._block is None or self._block.kind != "thinking")
            ):
                return  # nothing to show and nothing to carry: no empty thinking block
            block = self._ensure("thinking", {"type": "thinking", "thinking": ""})
            if not block.sent and summary:
                block.sent = summary
                self._delta({"type": "thinking_delta", "thinking": summary})
            if replay:
                signature = encode_signature(as_str(item.get("id")), encrypted)
                self._delta({"type": "signature_delta", "signature": signature})
            self._close_block()
        elif kind in ("function_call", "custom_tool_call"):
            if not self._in_tool():
                self._open_tool(item)
            if kind == "custom_tool_call":
                self._arguments(dumps({"input": as_str(item.get("input"))}), final=True)
            else:
                self._arguments(as_str(item.get("arguments")), final=True)
            self._close_block()
        else:
            self._close_block()  # web_search_call and the like: nothing to show

    # -- the end ----------------------------------------------------------------------

    def _terminal(self, kind: str, data: dict[str, Any]) -> None:
        response = as_dict(data.get("response"))
        if kind in ("response.failed", "error"):
            self._close_block()
            error = response.get("error") if kind == "response.failed" else data.get("error", data)
            self._error(codex_stream_error(error)["error"])
            return
        # Items still waiting (an upstream that never closed them): flush them in order.
        self._close_block()
        self._drain(force=True)
        for item in as_list(response.get("output")):
            item = as_dict(item)
            if as_str(item.get("id")) and item["id"] not in self._seen_items:
                self._added(item)
                self._done(item)
        reason = as_str(dig(response, "incomplete_details", "reason"))
        stop = "tool_use" if self._tool_use else STOP_REASONS.get(reason, "end_turn")
        if kind == "response.incomplete" and not self._tool_use:
            stop = STOP_REASONS.get(reason, "max_tokens")
        delta = {"stop_reason": stop, "stop_sequence": None}
        usage = messages_usage(response.get("usage"))
        self._emit("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        self._emit("message_stop", {"type": "message_stop"})
        self._ended = True

    def _error(self, error: dict[str, Any]) -> None:
        self._out.append(("error", {"type": "error", "error": error}))
        self._ended = True
