"""The translate package is sans-IO and deterministic (issue 13, item 1)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import trio_pool.translate

PACKAGE = Path(trio_pool.translate.__file__).parent
# Loaded by the interpreter itself before any of our code (zipimport needs time), so only
# the source check below can speak for them.
BANNED_AT_RUN_TIME = (
    "trio",
    "h11",
    "sqlite3",
    "socket",
    "ssl",
    "select",
    "httpcore",
    "wsproto",
    "random",
)
BANNED_IMPORTS = {"trio", "h11", "sqlite3", "socket", "time", "random", "datetime", "os", "secrets"}
BANNED_CALLS = {"uuid1", "uuid4", "now", "utcnow", "time", "monotonic", "urandom", "token_hex"}


def test_importing_the_package_loads_no_io_module() -> None:
    """A fresh interpreter that imports every translate module has no trio/h11/sockets."""
    code = (
        "import importlib, json, pkgutil, sys\n"
        "import trio_pool.translate as t\n"
        "for m in pkgutil.iter_modules(t.__path__):\n"
        "    importlib.import_module('trio_pool.translate.' + m.name)\n"
        f"print(json.dumps([m for m in {BANNED_AT_RUN_TIME!r} if m in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert json.loads(result.stdout) == []


def test_no_module_imports_a_clock_or_randomness() -> None:
    """No translate module imports time, random, os or I/O modules, or calls uuid4/now."""
    for path in sorted(PACKAGE.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                roots = {(node.module or "").split(".")[0]}
            else:
                roots = set()
            assert not roots & BANNED_IMPORTS, f"{path.name} imports {roots & BANNED_IMPORTS}"
            if isinstance(node, ast.Attribute):
                assert node.attr not in BANNED_CALLS, f"{path.name} uses .{node.attr}"
