"""Codex CLI on Claude accounts: the Messages stream as a Responses stream (§4.2).

What Codex needs (real-clients.md §4, protocols.md §1.7): ``response.created`` with an id;
``output_item.added`` before any delta ("OutputTextDelta without active item");
``output_item.done`` with the whole item (it is what Codex prints and records, with the
``call_id`` it dispatches on, cc-switch#4671); ``response.completed`` with an ``id``, else
it reconnects 5 times and exits 1. Every event carries a ``sequence_number`` (BCF).
A stream that ends without ``message_stop`` fails (``server_error``) rather than
completing: turning truncation into success would lose the turn silently [prop].
"""

from __future__ import annotations

from typing import Any

import attrs

from trio_pool.translate.errors import claude_stream_code
from trio_pool.translate.fields import as_dict, as_int, as_str, dig, dumps, loads_object
from trio_pool.translate.ids import derived_id
from trio_pool.translate.responses_tools import ToolTable
from trio_pool.translate.signatures import REDACTED_PREFIX
from trio_pool.translate.sse import Event, OutEvent, kind_of

EMPTY_TABLE = ToolTable([], {}, {})


@attrs.define
class _Item:
    output_index: int
    item: dict[str, Any]  # the item as output_item.added showed it
    text: str = ""  # text, summary or tool arguments so far
    signature: str = ""
    custom: bool = False
    initial: str = ""  # a tool input given whole in content_block_start


@attrs.define(eq=False)
class MessagesToResponses:
    """Feed Claude events (``(name, data)``), write the returned Responses events."""

    client_model: str
    tools: ToolTable = EMPTY_TABLE
    _out: list[OutEvent] = attrs.field(factory=list, init=False)
    _seq: int = attrs.field(default=0, init=False)
    _id: str = attrs.field(default="", init=False)
    _started: bool = attrs.field(default=False, init=False)
    _ended: bool = attrs.field(default=False, init=False)
    _items: dict[int, _Item] = attrs.field(factory=dict, init=False)
    _output: list[dict[str, Any]] = attrs.field(factory=list, init=False)
    _stop_reason: str = attrs.field(default="", init=False)
    _usage: dict[str, int] = attrs.field(factory=dict, init=False)

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, event: Event) -> list[OutEvent]:
        kind, data = kind_of(event), event[1]
        if self._ended or not isinstance(data, dict):
            return []
        if kind == "message_start":
            message = as_dict(data.get("message"))
            self._id = self._id or derived_id("resp_", as_str(message.get("id")))
            self._count(message.get("usage"))
            self._start()
        elif kind == "content_block_start":
            self._block_start(as_int(data.get("index")), as_dict(data.get("content_block")))
        elif kind == "content_block_delta":
            self._block_delta(as_int(data.get("index")), as_dict(data.get("delta")))
        elif kind == "content_block_stop":
            self._block_stop(as_int(data.get("index")))
        elif kind == "message_delta":
            self._stop_reason = as_str(dig(data, "delta", "stop_reason")) or self._stop_reason
            self._count(data.get("usage"))
        elif kind == "message_stop":
            self._complete()
        elif kind == "error":
            error = as_dict(data.get("error"))
            self._fail(claude_stream_code(error), as_str(error.get("message")) or "upstream error")
        return self._take()

    def finish(self) -> list[OutEvent]:
        if not self._ended:
            self._fail("server_error", "the upstream stream ended before message_stop")
        return self._take()

    def _take(self) -> list[OutEvent]:
        out, self._out = self._out, []
        return out

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        if kind not in ("response.created", "response.failed"):
            self._start()
        self._out.append((kind, {"type": kind, "sequence_number": self._seq, **fields}))
        self._seq += 1

    def _response(self, status: str) -> dict[str, Any]:
        response_id = self._id or derived_id("resp_", "")
        return {
            "id": response_id,
            "object": "response",
            "status": status,
            "model": self.client_model,
        }

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        response = {**self._response("in_progress"), "output": []}
        self._emit("response.created", {"response": response})
        self._emit("response.in_progress", {"response": response})

    def _count(self, usage: Any) -> None:
        # Later events repeat some counts (output is cumulative): a present field replaces.
        for key in (
            "input_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
            "output_tokens",
        ):
            if isinstance(dig(usage, key), int):
                self._usage[key] = as_int(usage[key])

    def _item_fields(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.item["id"], "output_index": item.output_index}

    # -- blocks -----------------------------------------------------------------------

    def _block_start(self, index: int, block: dict[str, Any]) -> None:
        kind = block.get("type")
        suffix = f"{self._id}:{index}"
        if kind == "text":
            added: dict[str, Any] = {
                "id": derived_id("msg_", suffix),
                "type": "message",
                "status": "in_progress",
                "role": "assistant",
                "content": [],
            }
        elif kind in ("thinking", "redacted_thinking"):
            added = {"id": derived_id("rs_", suffix), "type": "reasoning", "summary": []}
        elif kind == "tool_use":
            tool = self.tools.codex_tool(as_str(block.get("name")))
            call_id = as_str(block.get("id"))
            if tool.kind == "custom":
                added = {
                    "id": derived_id("ctc_", suffix),
                    "type": "custom_tool_call",
                    "status": "in_progress",
                    "call_id": call_id,
                    "name": tool.name,
                    "input": "",
                }
            else:
                added = {
                    "id": derived_id("fc_", suffix),
                    "type": "function_call",
                    "status": "in_progress",
                    "call_id": call_id,
                    "name": tool.name,
                    "arguments": "",
                }
            if tool.namespace:
                added["namespace"] = tool.namespace
        else:
            return  # server tool blocks: Anthropic ran them, Codex has nothing to do
        item = _Item(
            len(self._output) + len(self._items), added, custom=added["type"] == "custom_tool_call"
        )
        if kind == "redacted_thinking":
            item.signature = REDACTED_PREFIX + as_str(block.get("data"))
        if kind == "tool_use" and isinstance(block.get("input"), dict) and block["input"]:
            item.initial = dumps(block["input"])
        self._items[index] = item
        self._emit("response.output_item.added", {"output_index": item.output_index, "item": added})
        fields = self._item_fields(item)
        if kind == "text":
            part = {"type": "output_text", "text": "", "annotations": []}
            self._emit("response.content_part.added", {**fields, "content_index": 0, "part": part})
        elif kind == "thinking":
            part = {"type": "summary_text", "text": ""}
            self._emit(
                "response.reasoning_summary_part.added",
                {**fields, "summary_index": 0, "part": part},
            )

    def _block_delta(self, index: int, delta: dict[str, Any]) -> None:
        item = self._items.get(index)
        if item is None:
            return
        kind, fields = delta.get("type"), self._item_fields(item)
        if kind == "text_delta" and as_str(delta.get("text")):
            item.text += delta["text"]
            self._emit(
                "response.output_text.delta", {**fields, "content_index": 0, "delta": delta["text"]}
            )
        elif kind == "thinking_delta" and as_str(delta.get("thinking")):
            item.text += delta["thinking"]
            self._emit(
                "response.reasoning_summary_text.delta",
                {**fields, "summary_index": 0, "delta": delta["thinking"]},
            )
        elif kind == "signature_delta":
            item.signature = as_str(delta.get("signature"))
        elif kind == "input_json_delta" and as_str(delta.get("partial_json")):
            item.text += delta["partial_json"]
            if not item.custom:
                # Custom input is sent whole at the end: its deltas are pieces of the JSON
                # wrapper, not of the raw text Codex concatenates (CPA).
                self._emit(
                    "response.function_call_arguments.delta",
                    {**fields, "delta": delta["partial_json"]},
                )

    def _block_stop(self, index: int) -> None:
        item = self._items.pop(index, None)
        if item is None:
            return
        self._close(item)

    def _close(self, item: _Item) -> None:
        done = dict(item.item)
        fields = self._item_fields(item)
        kind = done["type"]
        if kind == "message":
            part = {"type": "output_text", "text": item.text, "annotations": []}
            self._emit(
                "response.output_text.done", {**fields, "content_index": 0, "text": item.text}
            )
            self._emit("response.content_part.done", {**fields, "content_index": 0, "part": part})
            done.update(status="completed", content=[part])
        elif kind == "reasoning":
            summary = [{"type": "summary_text", "text": item.text}] if item.text else []
            if not item.signature.startswith(REDACTED_PREFIX):
                self._emit(
                    "response.reasoning_summary_text.done",
                    {**fields, "summary_index": 0, "text": item.text},
                )
                part = {"type": "summary_text", "text": item.text}
                self._emit(
                    "response.reasoning_summary_part.done",
                    {**fields, "summary_index": 0, "part": part},
                )
            done.update(summary=summary, encrypted_content=item.signature)
        elif kind == "custom_tool_call":
            text = item.text or item.initial
            wrapped = as_dict(loads_object(text)).get("input")
            raw = wrapped if isinstance(wrapped, str) else text
            self._emit("response.custom_tool_call_input.done", {**fields, "input": raw})
            done.update(status="completed", input=raw)
        else:
            arguments = item.text or item.initial or "{}"
            self._emit("response.function_call_arguments.done", {**fields, "arguments": arguments})
            done.update(status="completed", arguments=arguments)
        self._output.append(done)
        self._emit("response.output_item.done", {"output_index": item.output_index, "item": done})

    # -- the end ----------------------------------------------------------------------

    def _usage_fields(self) -> dict[str, Any]:
        u = self._usage
        cached = u.get("cache_read_input_tokens", 0)
        total_in = u.get("input_tokens", 0) + u.get("cache_creation_input_tokens", 0) + cached
        output = u.get("output_tokens", 0)
        return {
            "input_tokens": total_in,
            "input_tokens_details": {"cached_tokens": cached},
            "output_tokens": output,
            "total_tokens": total_in + output,
        }

    def _complete(self) -> None:
        for index in list(self._items):
            self._block_stop(index)
        reason = {"max_tokens": "max_output_tokens", "refusal": "content_filter"}.get(
            self._stop_reason
        )
        status = "incomplete" if reason else "completed"
        response = {**self._response(status), "output": self._output, "usage": self._usage_fields()}
        if reason:
            response["incomplete_details"] = {"reason": reason}
        self._emit(f"response.{status}", {"response": response})
        self._ended = True

    def _fail(self, code: str, message: str) -> None:
        response = {
            **self._response("failed"),
            "output": self._output,
            "error": {"code": code, "message": message},
        }
        self._emit("response.failed", {"response": response})
        self._ended = True
