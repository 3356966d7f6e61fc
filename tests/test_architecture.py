"""The import structure holds: no circle between packages, a sans-IO core, no httpcore.

Imports are read with ``ast`` from the source (nothing is imported), so an import under
``if TYPE_CHECKING:`` or inside a function counts as much as one at the top of a module:
each is a dependency a reader has to hold in mind.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_pool"

# The sans-IO core (style.md §5.2): takes values and ``now``, returns decisions.
CORE = (
    "trio_pool.accounts",
    "trio_pool.providers",
    "trio_pool.translate",
    "trio_pool.server.messages",
    "trio_pool.usage.ledger",
    "trio_pool.usage.metrics",
    "trio_pool.usage.burn",
    "trio_pool.auth.model",
    "trio_pool.auth.limits",
    "trio_pool.auth.keys",
    "trio_pool.auth.request_checks",
    "trio_pool.auth.session",
    "trio_pool.auth.throttle",
    "trio_pool.auth.internal",
    "trio_pool.proxy.attempts",
)
# What does I/O (or waits): none of it may load with a core module.
IO_MODULES = frozenset(
    {
        "trio",
        "h11",
        "wsproto",
        "trio_websocket",
        "httpcore",
        "httpx",
        "sqlite3",
        "socket",
        "ssl",
        "select",
        "selectors",
        "asyncio",
        "subprocess",
        "psycopg",  # multi-host mode's PostgreSQL (state/pg): I/O like sqlite3
    }
)


@attrs.frozen
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted (a package when no module of that name)
    type_only: bool  # under ``if TYPE_CHECKING:``


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(body: Iterable[ast.stmt], type_only: bool) -> Iterator[tuple[ast.stmt, bool]]:
    for node in body:
        if isinstance(node, ast.If) and _is_type_checking(node):
            yield from _walk(node.body, True)
            yield from _walk(node.orelse, type_only)
            continue
        yield node, type_only
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                yield from _walk([child], type_only)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node, type_only in _walk(tree.body, False):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, type_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # ``from trio_pool.proxy import answers`` imports the module answers.
                full = f"{base}.{alias.name}"
                found.append(Import(name, full if full in known else base, type_only))
    return found


def all_imports() -> list[Import]:
    known = modules()
    return [i for name, path in known.items() for i in imports_of(name, path, known)]


def package_of(module: str) -> str | None:
    """``trio_pool.proxy.forward`` -> ``proxy``; ``trio_pool.app`` -> ``app``."""
    parts = module.split(".")
    if parts[0] != "trio_pool" or len(parts) < 2:
        return None
    return parts[1]


def package_cycles(imports: Iterable[Import]) -> list[list[str]]:
    """The strongly connected groups of more than one package (Tarjan's algorithm)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        a, b = package_of(imp.source), package_of(imp.target)
        if a is not None and b is not None and a != b:
            graph.setdefault(a, set()).add(b)
            graph.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


def _ties(imports: Iterable[Import], group: list[str]) -> list[str]:
    members = set(group)
    return sorted(
        {
            f"{i.source} -> {i.target}{' (type only)' if i.type_only else ''}"
            for i in imports
            if package_of(i.source) in members
            and package_of(i.target) in members
            and package_of(i.source) != package_of(i.target)
        }
    )


def _in_core(module: str) -> bool:
    return any(module == c or module.startswith(c + ".") for c in CORE)


def loaded_with(module: str, imports: list[Import]) -> dict[str, list[str]]:
    """Every module that importing ``module`` runs (TYPE_CHECKING ones do not run),
    each with the chain of imports that brings it in."""
    runtime: dict[str, list[str]] = {}
    for imp in imports:
        if not imp.type_only:
            runtime.setdefault(imp.source, []).append(imp.target)
    chains = {module: [module]}
    todo = [module]
    while todo:
        current = todo.pop()
        targets = list(runtime.get(current, ()))
        # Importing a.b.c runs a/__init__ and a/b/__init__ too.
        parts = current.split(".")
        targets += [".".join(parts[:n]) for n in range(2, len(parts))]
        for target in targets:
            if target not in chains:
                chains[target] = [*chains[current], target]
                todo.append(target)
    return chains


def test_no_import_circle_between_packages() -> None:
    """No two packages (or top-level modules) of trio_pool import each other, even for types."""
    imports = all_imports()
    cycles = package_cycles(imports)
    described = [f"{' <-> '.join(group)}: {_ties(imports, group)}" for group in cycles]
    assert described == []


def test_the_core_loads_nothing_that_does_io() -> None:
    """Importing a sans-IO core module loads no trio, h11, wsproto, sqlite3, sockets or ssl."""
    imports = all_imports()
    core = [name for name in modules() if _in_core(name)]
    assert "trio_pool.accounts.pool" in core
    problems: list[str] = []
    for name in core:
        for loaded, chain in sorted(loaded_with(name, imports).items()):
            if loaded.split(".")[0] in IO_MODULES:
                problems.append(" -> ".join(chain))
    assert problems == []


@pytest.mark.parametrize("folder", ["trio_pool", "tests", "bench"])
def test_nothing_imports_httpcore(folder: str) -> None:
    """httpcore is gone: our own h11 client is the only HTTP client in the code."""
    offenders = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "httpcore"
            ]
    assert offenders == []


def test_the_checker_sees_a_circle_and_a_type_only_import() -> None:
    """The checker itself: a cycle through a TYPE_CHECKING import is found."""
    imports = [
        Import("trio_pool.a.x", "trio_pool.b.y", type_only=False),
        Import("trio_pool.b.y", "trio_pool.a.z", type_only=True),
        Import("trio_pool.c", "trio_pool.a.x", type_only=False),
    ]
    assert package_cycles(imports) == [["a", "b"]]
    assert "trio_pool.a.z" not in loaded_with("trio_pool.a.x", imports)
