"""Events in and out of the stream translators, and their wire bytes.

An event is ``(name, data)``: the SSE ``event:`` name and the decoded ``data:`` JSON. The
translators accept anything as input data (the shell decodes with :func:`decode`, which
never raises, so a malformed frame arrives as ``(name, None)``) and always emit dicts.

Chat Completions streams have no event names: those events have the name ``""`` and are
written as a bare ``data:`` line; the sentinel is ``(DONE, {})`` -> ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from trio_pool.translate.fields import dumps

Event = tuple[str, Any]
OutEvent = tuple[str, dict[str, Any]]

DONE = "[DONE]"


def decode(name: str, data: str) -> Event:
    """A parsed SSE event (``SseEvent.event``, ``SseEvent.data``) as a translator input.

    The JSON ``type`` wins over the ``event:`` line, which Codex and Chat streams omit
    (Codex itself dispatches on ``type``, protocols.md §1.7).
    """
    if data.strip() == DONE:
        return DONE, {}
    try:
        value: Any = json.loads(data)
    except (ValueError, RecursionError):
        return name, None
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return value["type"], value
    return name, value


def kind_of(event: Event) -> str:
    """The event's type: ``data["type"]`` when it is a string, else the SSE name."""
    name, data = event
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return str(data["type"])
    return name if isinstance(name, str) else ""


def encode(event: OutEvent) -> bytes:
    name, data = event
    if name == DONE:
        return b"data: [DONE]\n\n"
    # json.dumps escapes newlines, so the data is always one line.
    if not name:
        return f"data: {dumps(data)}\n\n".encode()
    return f"event: {name}\ndata: {dumps(data)}\n\n".encode()


def encode_all(events: Iterable[OutEvent]) -> bytes:
    return b"".join(encode(event) for event in events)


def ping() -> OutEvent:
    """Anthropic's keep-alive, allowed anywhere in a Messages stream (protocols.md §2.7);
    the shell sends it when the upstream has been silent for a while (translation.md §3.1)."""
    return "ping", {"type": "ping"}
