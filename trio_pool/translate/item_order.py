"""Codex output items, one at a time.

Messages content blocks never interleave, but Codex items can: two parallel calls' argument
deltas arrive mixed. One item owns the output at a time; events of the others wait, in
arrival order, until it is done (CPA's FunctionCallQueue, generalised to every item type).
Items are keyed by ``output_index``, or by item id when an event lacks the index.
"""

from __future__ import annotations

from typing import Any

import attrs

from trio_pool.translate.fields import as_str, dig

Pending = tuple[str, dict[str, Any]]


@attrs.define(eq=False)
class ItemOrder:
    active: Any = None
    _waiting: dict[Any, list[Pending]] = attrs.field(factory=dict)
    _closed: set[Any] = attrs.field(factory=set)
    _aliases: dict[str, int] = attrs.field(factory=dict)

    def key(self, data: dict[str, Any]) -> Any:
        index = data.get("output_index")
        item_id = as_str(data.get("item_id")) or as_str(dig(data, "item", "id"))
        if isinstance(index, int) and not isinstance(index, bool):
            if item_id:
                self._aliases.setdefault(item_id, index)
            return index
        return self._aliases.get(item_id, item_id)

    def admit(self, key: Any, kind: str, data: dict[str, Any]) -> bool:
        """Whether the event's item owns the output now; if not, the event waits (or is
        dropped when its item is already done)."""
        if key in self._closed:
            return False
        if self.active is None:
            self.active = key
        if key != self.active:
            self._waiting.setdefault(key, []).append((kind, data))
            return False
        return True

    def close(self, key: Any) -> None:
        self._closed.add(key)
        if self.active == key:
            self.active = None

    def next_waiting(self) -> tuple[Any, list[Pending]] | None:
        """The first waiting item, made active, with its events; None when none waits."""
        if not self._waiting:
            return None
        key = next(iter(self._waiting))
        self.active = key
        return key, self._waiting.pop(key)
