"""Upstream streams for the translator tests, as the providers send them (protocols.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from trio_pool.providers.sse import SseParser
from trio_pool.translate.sse import Event, OutEvent, decode

CLIENT_MODEL = "claude-opus-5-5"


class Translator(Protocol):
    def feed(self, event: Event) -> list[OutEvent]: ...

    def finish(self) -> list[OutEvent]: ...


def sse_bytes(events: Iterable[Event], *, named: bool = True) -> bytes:
    """Events on the wire; Codex may omit the ``event:`` line, Anthropic always sends it."""
    out = []
    for name, data in events:
        head = f"event: {name}\n" if named and name else ""
        out.append(f"{head}data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def parse(chunks: Iterable[bytes]) -> list[Event]:
    """Bytes in any split, through the project's SSE parser, as translator input."""
    parser = SseParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return [decode(e.event, e.data) for e in events]


def run(translator: Translator, events: Iterable[Event]) -> list[OutEvent]:
    out = [o for event in events for o in translator.feed(event)]
    return out + translator.finish()


def names(events: Sequence[OutEvent]) -> list[str]:
    return [name for name, _ in events]


def codex(kind: str, **fields: Any) -> Event:
    return kind, {"type": kind, **fields}


def created(response_id: str = "resp_1") -> Event:
    response = {"id": response_id, "object": "response", "status": "in_progress", "output": []}
    return codex("response.created", response=response)


def completed(usage: dict[str, Any] | None = None, **response: Any) -> Event:
    body = {"id": "resp_1", "object": "response", "status": "completed", **response}
    if usage is not None:
        body["usage"] = usage
    return codex("response.completed", response=body)


def text_item(text: str, index: int = 0, item_id: str = "msg_1") -> list[Event]:
    item = {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": "in_progress",
        "content": [],
    }
    done = {
        **item,
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return [
        codex("response.output_item.added", output_index=index, item=item),
        codex(
            "response.output_text.delta",
            item_id=item_id,
            output_index=index,
            content_index=0,
            delta=text,
        ),
        codex("response.output_item.done", output_index=index, item=done),
    ]


def call_item(
    call_id: str, name: str, arguments: str, index: int = 0, deltas: Sequence[str] | None = None
) -> list[Event]:
    item_id = f"fc_{call_id}"
    item = {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": "",
    }
    events = [codex("response.output_item.added", output_index=index, item=item)]
    for delta in deltas if deltas is not None else [arguments]:
        events.append(
            codex(
                "response.function_call_arguments.delta",
                item_id=item_id,
                output_index=index,
                delta=delta,
            )
        )
    done = {**item, "arguments": arguments, "status": "completed"}
    events.append(codex("response.output_item.done", output_index=index, item=done))
    return events


def claude(kind: str, **fields: Any) -> Event:
    return kind, {"type": kind, **fields}


def message_start(message_id: str = "msg_01", **usage: int) -> Event:
    message: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-opus-5-5",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 0, "output_tokens": 1, **usage},
    }
    return claude("message_start", message=message)


def claude_block(
    index: int, block: dict[str, Any], deltas: Sequence[dict[str, Any]]
) -> list[Event]:
    events = [claude("content_block_start", index=index, content_block=block)]
    events += [claude("content_block_delta", index=index, delta=d) for d in deltas]
    return [*events, claude("content_block_stop", index=index)]


def claude_end(stop_reason: str = "end_turn", **usage: int) -> list[Event]:
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    return [claude("message_delta", delta=delta, usage=usage), claude("message_stop")]
