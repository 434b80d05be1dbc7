"""The package's import graph: no cycle between modules, and every import goes down the layers, never up.

Every `import` in every module under `flora_mcp/` counts: module level, inside functions (lazy) and under
`TYPE_CHECKING`, since each one is a dependency a reader has to follow. The layers, lowest first:

    foundation     flora_mcp._version, flora_mcp._net, flora_mcp._fetch_guard, flora_mcp._media, flora_mcp.logs
    api            the FLORA REST client
    settings       flora_mcp.config: the settings, whose defaults are the api layer's constants
    store          the journal, spend and budgets, task state and remembered uploads, in SQLite or PostgreSQL
    core           catalog, runs, journal, results, the Toolkit facade
    server | integrations   MCP wiring | export and adapters: peers, neither imports the other
    hosted         HTTP + SSE
    cli            the entry point
    public         flora_mcp, flora_mcp.__main__, flora_mcp.export, flora_mcp.adapters: re-exports nothing imports

A module imports its own package and the layers below it. `sandbox` stands apart: it imports only the foundation
and itself, and only `cli` (and the tests) import it. Importing a package's submodule is not counted as importing the
package's `__init__` (Python does run it, but a layer may always run its own `__init__`).
"""

from __future__ import annotations

import ast
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "flora_mcp"

FOUNDATION = frozenset({"flora_mcp._version", "flora_mcp._net", "flora_mcp._fetch_guard", "flora_mcp._media",
                        "flora_mcp.logs"})
SETTINGS = "flora_mcp.config"
PUBLIC = frozenset({"flora_mcp", "flora_mcp.__main__", "flora_mcp.export", "flora_mcp.adapters"})
RANKS = {"foundation": 0, "api": 1, "settings": 2, "store": 3, "core": 4, "server": 5, "integrations": 5, "hosted": 6,
         "cli": 7, "public": 8}
SANDBOX = "sandbox"

# The one import that goes up a layer. `Toolkit.export_tools` hands the library user the same definitions in a
# vendor's shape; `integrations.export` is a leaf of dict -> dict functions (it reaches no core module: checked below),
# so the lazy import cannot form a cycle, and keeping the method on the facade keeps the public API where users look.
ALLOWED_UPWARD = {("flora_mcp.core.toolkit", "flora_mcp.integrations.export")}


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    lazy: bool
    """Inside a function body: runs when called, not when the module is imported."""


def module_names(package_dir: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every module's dotted name (a package by its own name, for its `__init__.py`) and its file."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def imports_in(source: str, module: str, is_package: bool, known: Iterable[str]) -> list[Import]:
    """The `flora_mcp` modules that `source` imports, resolved against `known` module names."""
    known = set(known)

    def resolve(name: str) -> str | None:
        while name and name not in known:  # `import a.b.c` of an attribute: the longest prefix that is a module
            name = name.rpartition(".")[0]
        return name or None

    found: list[Import] = []

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            if isinstance(child, ast.Import):
                targets = [resolve(alias.name) for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    parts = module.split(".")
                    base = parts[: len(parts) - child.level + (1 if is_package else 0)]
                    origin = ".".join([*base, child.module] if child.module else base)
                else:
                    origin = child.module or ""
                # `from pkg import mod` imports the submodule; `from mod import name` imports the module.
                targets = [f"{origin}.{a.name}" if f"{origin}.{a.name}" in known else resolve(origin)
                           for a in child.names]
            else:
                visit(child, inner)
                continue
            found.extend(Import(module, target, child.lineno, lazy) for target in dict.fromkeys(targets)
                         if target is not None and target.startswith("flora_mcp") and target != module)

    visit(ast.parse(source), lazy=False)
    return found


def package_imports() -> list[Import]:
    modules = module_names()
    edges: list[Import] = []
    for name, path in modules.items():
        edges += imports_in(path.read_text(encoding="utf-8"), name, path.name == "__init__.py", modules)
    return edges


def layer_of(module: str) -> str | None:
    if module in FOUNDATION:
        return "foundation"
    if module == SETTINGS:
        return "settings"
    if module in PUBLIC:
        return "public"
    parts = module.split(".")
    if len(parts) >= 2 and (parts[1] in RANKS or parts[1] == SANDBOX):
        return parts[1]
    return None


def violation(edge: Import) -> str | None:
    """Why this import breaks the layers, or None when it goes down (or stays in its package)."""
    low, high = layer_of(edge.imported), layer_of(edge.importer)
    where = f"{edge.importer} (line {edge.line}) imports {edge.imported}"
    if low is None or high is None:
        return f"{where}: a module outside every layer; add it to the layers in tests/test_layers.py"
    if low == high:
        return None
    if (edge.importer, edge.imported) in ALLOWED_UPWARD:
        return None if edge.lazy else f"{where}: the one allowed upward import must stay inside the method"
    if low == "public":
        return f"{where}: a public re-export; import the module that defines the name"
    if high == SANDBOX:
        return None if low == "foundation" else f"{where}: the sandbox imports only the foundation and itself"
    if low == SANDBOX:
        return None if high == "cli" else f"{where}: only cli may import the sandbox"
    if RANKS[low] == RANKS[high]:
        return f"{where}: {high} and {low} are peers; neither imports the other"
    if RANKS[low] > RANKS[high]:
        return f"{where}: {high} is below {low}, so it must not import it"
    return None


def cycles(edges: Iterable[Import]) -> list[list[str]]:
    """Import cycles: in each group of mutually importing modules, the shortest cycle through each member."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:  # Tarjan; the package's graph is far too shallow for the recursion limit
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = set()
            while (member := stack.pop()) != node:
                on_stack.discard(member)
                group.add(member)
            on_stack.discard(node)
            groups.append(group | {node})

    for node in sorted(graph):
        if node not in index:
            connect(node)
    found: dict[tuple[str, ...], list[str]] = {}
    for group in (g for g in groups if len(g) > 1):
        for start in sorted(group):  # the shortest cycle through each member, so fixing one does not hide the next
            cycle = _shortest_cycle(graph, group, start)[:-1]
            first = cycle.index(min(cycle))
            rotated = cycle[first:] + cycle[:first]
            found.setdefault(tuple(rotated), [*rotated, rotated[0]])
    return sorted(found.values())


def _shortest_cycle(graph: dict[str, set[str]], group: set[str], start: str) -> list[str]:
    parents: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for succ in sorted(graph[node] & group):
            if succ == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if succ not in parents:
                parents[succ] = node
                queue.append(succ)
    raise AssertionError(f"{sorted(group)} is strongly connected but holds no cycle through {start}")


def reachable(edges: Iterable[Import], start: str) -> set[str]:
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
    seen, todo = set(), [start]
    while todo:
        for succ in graph.get(todo.pop(), ()):
            if succ not in seen:
                seen.add(succ)
                todo.append(succ)
    return seen


# The package as it is.


def test_every_module_belongs_to_a_layer() -> None:
    assert [m for m in module_names() if layer_of(m) is None] == []


def test_no_module_imports_a_module_that_imports_it_back() -> None:
    found = cycles(package_imports())
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in found)


def test_every_import_goes_down_the_layers() -> None:
    broken = [reason for edge in package_imports() if (reason := violation(edge))]
    assert broken == [], "layer violations:\n" + "\n".join(broken)


def test_the_one_upward_import_reaches_no_core_module() -> None:
    edges = package_imports()
    for importer, imported in ALLOWED_UPWARD:
        assert any(e.importer == importer and e.imported == imported for e in edges), (
            f"{importer} no longer imports {imported}: remove it from ALLOWED_UPWARD")
        leaf_layers = {"foundation", "api", "integrations"}
        above = sorted(m for m in reachable(edges, imported) if layer_of(m) not in leaf_layers)
        assert above == [], f"{imported} is no longer a leaf: it reaches {above}, so {importer} importing it is upward"


def test_the_scan_sees_the_imports_python_would_run() -> None:
    # Checked on the real tree, so a parser change that stops seeing lazy or TYPE_CHECKING imports fails here.
    edges = {(e.importer, e.imported): e for e in package_imports()}
    assert edges["flora_mcp.core.toolkit", "flora_mcp.integrations.export"].lazy
    assert ("flora_mcp.core.refresh", "flora_mcp.core.toolkit") in edges  # under TYPE_CHECKING
    assert not edges["flora_mcp.sandbox._app", "flora_mcp.sandbox._routes"].lazy  # `from pkg import submodule`


# The checks themselves, on synthetic modules: each must catch what it exists for.

KNOWN = {"flora_mcp", "flora_mcp.core", "flora_mcp.core.a", "flora_mcp.core.b", "flora_mcp.server",
         "flora_mcp.server.h", "flora_mcp.cli", "flora_mcp.cli.main", "flora_mcp.sandbox", "flora_mcp.logs"}


def edges_of(sources: dict[str, str]) -> list[Import]:
    return [edge for module, source in sources.items()
            for edge in imports_in(source, module, any(k.startswith(f"{module}.") for k in KNOWN), KNOWN)]


def test_the_scan_finds_lazy_type_only_relative_and_submodule_imports() -> None:
    source = """
from typing import TYPE_CHECKING
import flora_mcp.logs
from flora_mcp.core import b
from ..server import h
if TYPE_CHECKING:
    from flora_mcp.sandbox import Sandbox
def later():
    from flora_mcp.cli.main import main
    import httpx
"""
    found = {(e.imported, e.lazy) for e in imports_in(source, "flora_mcp.core.a", False, KNOWN)}
    assert found == {("flora_mcp.logs", False), ("flora_mcp.core.b", False), ("flora_mcp.server.h", False),
                     ("flora_mcp.sandbox", False), ("flora_mcp.cli.main", True)}


def test_a_cycle_is_caught_and_reported_as_its_path() -> None:
    edges = edges_of({
        "flora_mcp.core.a": "from flora_mcp.core.b import x",
        "flora_mcp.core.b": "def f():\n    from flora_mcp.server.h import y",  # lazy still closes the loop
        "flora_mcp.server.h": "import flora_mcp.core.a",
        "flora_mcp.cli.main": "from flora_mcp.core import a",
    })
    assert cycles(edges) == [["flora_mcp.core.a", "flora_mcp.core.b", "flora_mcp.server.h", "flora_mcp.core.a"]]
    assert cycles([e for e in edges if e.importer != "flora_mcp.server.h"]) == []


@pytest.mark.parametrize(("importer", "source", "expected"), [
    ("flora_mcp.core.a", "from flora_mcp.server.h import y", "core is below server"),
    ("flora_mcp.core.a", "import flora_mcp.cli.main", "core is below cli"),
    ("flora_mcp.core.a", "from flora_mcp import Toolkit", "a public re-export"),
    ("flora_mcp.core.a", "from flora_mcp.sandbox import Sandbox", "only cli may import the sandbox"),
    ("flora_mcp.sandbox", "from flora_mcp.core.a import y", "the sandbox imports only the foundation"),
    ("flora_mcp.logs", "from flora_mcp.core.a import y", "foundation is below core"),
])
def test_a_layer_violation_is_caught(importer: str, source: str, expected: str) -> None:
    [edge] = edges_of({importer: source})
    assert expected in (violation(edge) or "")


@pytest.mark.parametrize(("importer", "source"), [
    ("flora_mcp.server.h", "from flora_mcp.core.a import y"),
    ("flora_mcp.cli.main", "from flora_mcp.sandbox import Sandbox"),
    ("flora_mcp.sandbox", "from flora_mcp.logs import redact"),
    ("flora_mcp.core.a", "from flora_mcp.core.b import y"),
])
def test_an_import_down_the_layers_passes(importer: str, source: str) -> None:
    [edge] = edges_of({importer: source})
    assert violation(edge) is None


def test_the_allowed_upward_import_must_stay_lazy() -> None:
    eager = Import("flora_mcp.core.toolkit", "flora_mcp.integrations.export", 1, lazy=False)
    assert "must stay inside the method" in (violation(eager) or "")
    assert violation(Import("flora_mcp.core.toolkit", "flora_mcp.integrations.export", 1, lazy=True)) is None
