"""Non-streaming clients: one JSON answer assembled from translated stream events.

Codex only streams (``stream: true`` is required), so a ``stream: false`` client is served
by running the stream translator and collecting its output here (CPA's …NonStream). The
assembler trusts the translator's event order, and on an ``error`` event (or a missing
terminal event) answers with an error in the client's shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs

from trio_pool.translate.errors import JsonReply, chat_error_body, retry_after_s
from trio_pool.translate.fields import as_dict, as_int, as_str, loads_object
from trio_pool.translate.sse import DONE, OutEvent

JSON = (("content-type", "application/json"),)
STATUS_BY_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 502,
    "overloaded_error": 529,
}


def _error_reply(status: int, body: dict[str, Any], error: Any) -> JsonReply:
    if status == 429:
        # The message may say "try again in 1.5s"; nothing else here knows the reset.
        wait = retry_after_s(error, {}, 0.0)
        return JsonReply(status, (*JSON, ("retry-after", str(wait))), body)
    return JsonReply(status, JSON, body)


@attrs.define(eq=False)
class MessageAssembler:
    """Messages stream events -> one ``{"type": "message", ...}`` answer."""

    _message: dict[str, Any] = attrs.field(factory=dict, init=False)
    _blocks: dict[int, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _json: dict[int, str] = attrs.field(factory=dict, init=False)
    _error: dict[str, Any] | None = attrs.field(default=None, init=False)
    _stopped: bool = attrs.field(default=False, init=False)

    def add(self, events: Iterable[OutEvent]) -> None:
        for name, data in events:
            self._add(name, data)

    def _add(self, name: str, data: dict[str, Any]) -> None:
        if name == "message_start":
            self._message = dict(as_dict(data.get("message")))
        elif name == "content_block_start":
            block = dict(as_dict(data.get("content_block")))
            if block.get("type") == "thinking":
                block["signature"] = ""
            self._blocks[as_int(data.get("index"))] = block
        elif name == "content_block_delta":
            self._delta(as_int(data.get("index")), as_dict(data.get("delta")))
        elif name == "message_delta":
            self._message.update(as_dict(data.get("delta")))
            usage = dict(as_dict(self._message.get("usage")))
            usage.update(as_dict(data.get("usage")))
            self._message["usage"] = usage
        elif name == "message_stop":
            self._stopped = True
        elif name == "error":
            self._error = as_dict(data.get("error"))

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.get(index)
        if block is None:
            return
        kind = delta.get("type")
        if kind == "text_delta":
            block["text"] = as_str(block.get("text")) + as_str(delta.get("text"))
        elif kind == "thinking_delta":
            block["thinking"] = as_str(block.get("thinking")) + as_str(delta.get("thinking"))
        elif kind == "signature_delta":
            block["signature"] = as_str(delta.get("signature"))
        elif kind == "input_json_delta":
            self._json[index] = self._json.get(index, "") + as_str(delta.get("partial_json"))

    def reply(self) -> JsonReply:
        if self._error is not None or not self._stopped:
            error = self._error or {
                "type": "api_error",
                "message": "the upstream stream ended early",
            }
            status = STATUS_BY_TYPE.get(as_str(error.get("type")), 502)
            return _error_reply(status, {"type": "error", "error": error}, error)
        content = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            if block.get("type") == "tool_use":
                # Arguments that are not a JSON object become {} (CPA).
                block["input"] = loads_object(self._json.get(index, "")) or {}
            content.append(block)
        message = self._message
        body = {
            "id": as_str(message.get("id")),
            "type": "message",
            "role": "assistant",
            "model": message.get("model"),
            "content": content,
            "stop_reason": message.get("stop_reason"),
            "stop_sequence": message.get("stop_sequence"),
            "usage": message.get("usage", {}),
        }
        return JsonReply(200, JSON, body)


@attrs.define(eq=False)
class ChatAssembler:
    """Chat Completions chunks -> one ``chat.completion`` answer."""

    _head: dict[str, Any] = attrs.field(factory=dict, init=False)
    _content: list[str] = attrs.field(factory=list, init=False)
    _reasoning: list[str] = attrs.field(factory=list, init=False)
    _calls: dict[int, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _finish: str | None = attrs.field(default=None, init=False)
    _usage: Any = attrs.field(default=None, init=False)
    _error: dict[str, Any] | None = attrs.field(default=None, init=False)
    _done: bool = attrs.field(default=False, init=False)

    def add(self, events: Iterable[OutEvent]) -> None:
        for name, data in events:
            if name == DONE:
                self._done = True
            elif "error" in data:
                self._error = as_dict(data.get("error"))
            else:
                self._chunk(data)

    def _chunk(self, data: dict[str, Any]) -> None:
        if not self._head:
            self._head = {k: data.get(k) for k in ("id", "created", "model")}
        if data.get("usage") is not None:
            self._usage = data["usage"]
        for choice in data.get("choices") or []:
            delta = as_dict(as_dict(choice).get("delta"))
            if isinstance(delta.get("content"), str):
                self._content.append(delta["content"])
            if isinstance(delta.get("reasoning_content"), str):
                self._reasoning.append(delta["reasoning_content"])
            for call in delta.get("tool_calls") or []:
                self._call(as_dict(call))
            if as_dict(choice).get("finish_reason") is not None:
                self._finish = as_dict(choice)["finish_reason"]

    def _call(self, call: dict[str, Any]) -> None:
        entry = self._calls.setdefault(
            as_int(call.get("index")),
            {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
        )
        if as_str(call.get("id")):
            entry["id"] = call["id"]
        function = as_dict(call.get("function"))
        entry["function"]["name"] += as_str(function.get("name"))
        entry["function"]["arguments"] += as_str(function.get("arguments"))

    def reply(self) -> JsonReply:
        if self._error is not None or not self._done:
            error = (
                self._error
                or chat_error_body(
                    "the upstream stream ended early", "server_error", "server_error"
                )["error"]
            )
            kind = as_str(error.get("type"))
            status = 429 if kind == "rate_limit_error" else STATUS_BY_TYPE.get(kind, 502)
            if as_str(error.get("code")) == "server_is_overloaded":
                status = 503
            return _error_reply(status, {"error": error}, error)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self._content) or None}
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if self._calls:
            message["tool_calls"] = [self._calls[i] for i in sorted(self._calls)]
        body: dict[str, Any] = {
            "id": self._head.get("id"),
            "object": "chat.completion",
            "created": self._head.get("created"),
            "model": self._head.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish or "stop"}],
        }
        if self._usage is not None:
            body["usage"] = self._usage
        return JsonReply(200, JSON, body)


@attrs.define(eq=False)
class ResponseAssembler:
    """Responses stream events -> the ``response`` object a ``stream: false`` Responses
    client expects: the terminal event already carries it whole (output items included)."""

    _response: dict[str, Any] | None = attrs.field(default=None, init=False)
    _failed: bool = attrs.field(default=False, init=False)

    def add(self, events: Iterable[OutEvent]) -> None:
        for name, data in events:
            if name in ("response.completed", "response.incomplete", "response.failed"):
                self._response = as_dict(data.get("response"))
                self._failed = name == "response.failed"

    def reply(self) -> JsonReply:
        response = self._response
        if response is None or self._failed:
            error = as_dict((response or {}).get("error")) or {
                "code": "server_error",
                "message": "the upstream stream ended early",
            }
            code = as_str(error.get("code")) or "server_error"
            status = {"rate_limit_exceeded": 429, "context_length_exceeded": 400}.get(code, 502)
            status = 503 if code == "server_is_overloaded" else status
            body = {"error": {"type": code, "code": code, "message": as_str(error.get("message"))}}
            return _error_reply(status, body, error)
        return JsonReply(200, JSON, response)
