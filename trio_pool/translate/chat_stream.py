"""Chat Completions streams: Responses (Codex) events and Messages (Claude) events as
``chat.completion.chunk`` data lines ending in ``data: [DONE]`` (§5).

Text goes in ``delta.content``, reasoning summaries in ``delta.reasoning_content``
(CPA), tool calls in ``delta.tool_calls`` with a stable ``index`` per call. With
``stream_options.include_usage`` every chunk has ``"usage": null`` and one last chunk
with ``choices: []`` carries the usage (the OpenAI API's rule).
"""

from __future__ import annotations

from typing import Any

import attrs

from trio_pool.translate.errors import chat_error_body, codex_error_kind
from trio_pool.translate.fields import as_dict, as_int, as_list, as_str, dig
from trio_pool.translate.ids import ToolNames, derived_id
from trio_pool.translate.messages_stream_to_responses import EMPTY_TABLE, MessagesToResponses
from trio_pool.translate.responses_tools import ToolTable
from trio_pool.translate.signatures import summary_text
from trio_pool.translate.sse import DONE, Event, OutEvent, kind_of

FINISH_REASONS = {"max_output_tokens": "length", "content_filter": "content_filter"}


def chat_usage(usage: Any) -> dict[str, Any]:
    prompt = as_int(dig(usage, "input_tokens"))
    completion = as_int(dig(usage, "output_tokens"))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": as_int(dig(usage, "input_tokens_details", "cached_tokens"))
        },
        "completion_tokens_details": {
            "reasoning_tokens": as_int(dig(usage, "output_tokens_details", "reasoning_tokens"))
        },
    }


@attrs.define
class _Call:
    index: int
    sent: str = ""


@attrs.define(eq=False)
class ResponsesToChat:
    """Feed Responses events, write the returned chunk events (name ``""``, or DONE)."""

    client_model: str
    created: int = 0  # unix seconds, from the shell: the translator has no clock
    include_usage: bool = False
    tool_names: ToolNames = attrs.field(factory=ToolNames)
    _out: list[OutEvent] = attrs.field(factory=list, init=False)
    _id: str = attrs.field(default="", init=False)
    _role_sent: bool = attrs.field(default=False, init=False)
    _ended: bool = attrs.field(default=False, init=False)
    _calls: dict[Any, _Call] = attrs.field(factory=dict, init=False)
    _text_items: dict[Any, bool] = attrs.field(factory=dict, init=False)  # streamed any text?
    _parts: dict[Any, int] = attrs.field(factory=dict, init=False)

    @property
    def ended(self) -> bool:
        return self._ended

    def feed(self, event: Event) -> list[OutEvent]:
        kind, data = kind_of(event), event[1]
        if self._ended or not isinstance(data, dict):
            return []
        key = data.get("output_index", data.get("item_id"))
        key = key if isinstance(key, int | str) else None
        item = as_dict(data.get("item"))
        if kind in ("response.created", "response.in_progress"):
            self._id = self._id or as_str(dig(data, "response", "id"))
        elif kind in ("response.output_text.delta", "response.refusal.delta"):
            self._text_items[key] = True
            self._chunk({"content": as_str(data.get("delta"))})
        elif kind == "response.reasoning_summary_part.added":
            self._parts[key] = self._parts.get(key, 0) + 1
            if self._parts[key] > 1:
                self._chunk({"reasoning_content": "\n\n"})
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            self._parts.setdefault(key, 1)
            self._chunk({"reasoning_content": as_str(data.get("delta"))})
        elif kind == "response.output_item.added" and item.get("type") == "function_call":
            self._open_call(key, item)
        elif kind == "response.function_call_arguments.delta" and key in self._calls:
            self._arguments(key, as_str(data.get("delta")), final=False)
        elif kind == "response.function_call_arguments.done" and key in self._calls:
            self._arguments(key, as_str(data.get("arguments")), final=True)
        elif kind == "response.output_item.done":
            self._item_done(key, item)
        elif kind in ("response.completed", "response.incomplete"):
            self._complete(as_dict(data.get("response")))
        elif kind in ("response.failed", "error"):
            error = (
                dig(data, "response", "error")
                if kind == "response.failed"
                else data.get("error", data)
            )
            self._fail(error)
        return self._take()

    def finish(self) -> list[OutEvent]:
        if not self._ended:
            self._fail({"code": "server_error", "message": "the upstream stream ended early"})
        return self._take()

    def _take(self) -> list[OutEvent]:
        out, self._out = self._out, []
        return out

    def _base(self) -> dict[str, Any]:
        return {
            "id": derived_id("chatcmpl-", self._id),
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.client_model,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> None:
        if not self._role_sent:
            self._role_sent = True
            delta = {"role": "assistant", **delta}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        chunk = {**self._base(), "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None
        self._out.append(("", chunk))

    def _open_call(self, key: Any, item: dict[str, Any]) -> None:
        call = _Call(len(self._calls))
        self._calls[key] = call
        name = self.tool_names.original(as_str(item.get("name")))
        call_id = as_str(item.get("call_id")) or as_str(item.get("id"))
        entry = {
            "index": call.index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        self._chunk({"tool_calls": [entry]})

    def _arguments(self, key: Any, text: str, *, final: bool) -> None:
        call = self._calls[key]
        if final:
            if not text.startswith(call.sent):
                return
            text = text[len(call.sent) :]
        if text:
            call.sent += text
            self._chunk({"tool_calls": [{"index": call.index, "function": {"arguments": text}}]})

    def _item_done(self, key: Any, item: dict[str, Any]) -> None:
        kind = item.get("type")
        if kind == "function_call":
            if key not in self._calls:
                self._open_call(key, item)
            self._arguments(key, as_str(item.get("arguments")), final=True)
        elif kind == "message" and not self._text_items.get(key):
            texts = [as_str(as_dict(p).get("text")) for p in as_list(item.get("content"))]
            if any(texts):
                self._chunk({"content": "".join(texts)})
        elif kind == "reasoning" and key not in self._parts and summary_text(item):
            self._chunk({"reasoning_content": summary_text(item)})

    def _complete(self, response: dict[str, Any]) -> None:
        reason = as_str(dig(response, "incomplete_details", "reason"))
        finish = "tool_calls" if self._calls else FINISH_REASONS.get(reason, "stop")
        self._chunk({}, finish)
        if self.include_usage:
            self._out.append(
                ("", {**self._base(), "choices": [], "usage": chat_usage(response.get("usage"))})
            )
        self._out.append((DONE, {}))
        self._ended = True

    def _fail(self, error: Any) -> None:
        code = as_str(dig(error, "code")) or as_str(dig(error, "type")) or "server_error"
        message = as_str(dig(error, "message")) or "the upstream response failed"
        status, _ = codex_error_kind(code, 200)
        kind = {429: "rate_limit_error", 529: "server_error"}.get(status, "invalid_request_error")
        if status in (500, 502) or code == "server_error":
            kind = "server_error"
        self._out.append(("", chat_error_body(message, kind, code)))
        self._out.append((DONE, {}))
        self._ended = True


@attrs.define(eq=False)
class MessagesToChat:
    """Claude's Messages events as chat chunks: Messages -> Responses -> Chat, so both
    Chat paths share one chunk writer (usage then counts cache reads and writes as
    prompt tokens, as CPA does)."""

    client_model: str
    created: int = 0
    include_usage: bool = False
    tools: ToolTable = EMPTY_TABLE
    _first: MessagesToResponses = attrs.field(init=False)
    _second: ResponsesToChat = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._first = MessagesToResponses(self.client_model, self.tools)
        self._second = ResponsesToChat(self.client_model, self.created, self.include_usage)

    @property
    def ended(self) -> bool:
        return self._second.ended

    def feed(self, event: Event) -> list[OutEvent]:
        return [out for mid in self._first.feed(event) for out in self._second.feed(mid)]

    def finish(self) -> list[OutEvent]:
        out = [out for mid in self._first.finish() for out in self._second.feed(mid)]
        return out + self._second.finish()
