"""The one cattrs converter, strict about types, for our own files (config, state records).

Provider payloads are not structured through it: they are parsed by hand, tolerating unknown
fields, because the providers add fields every release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cattrs


def _strict(kind: type[Any], *accepted: type[Any]) -> Any:
    """A structure hook that refuses values of the wrong type instead of coercing them."""

    def hook(value: Any, _type: Any) -> Any:
        # bool is an int subclass: never accept it where a number is wanted.
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got a boolean")
        if not isinstance(value, accepted):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return kind(value)

    return hook


converter = cattrs.Converter(forbid_extra_keys=True)
converter.register_structure_hook(str, _strict(str, str))
converter.register_structure_hook(int, _strict(int, int))
converter.register_structure_hook(float, _strict(float, int, float))
converter.register_structure_hook(bool, _strict(bool, bool))
converter.register_structure_hook(Path, _strict(Path, str))
converter.register_unstructure_hook(Path, str)


def describe_errors(exc: BaseException) -> list[str]:
    """Every problem in a cattrs error, each as 'key.path: reason'."""
    problems = []
    for message in cattrs.transform_error(exc, path="config"):
        # transform_error yields 'reason @ $.path'; we show 'path: reason'.
        reason, _, where = message.rpartition(" @ ")
        where = where.removeprefix("config").lstrip(".") or "(top level)"
        problems.append(f"{where}: {reason}")
    return problems
