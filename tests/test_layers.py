"""The import contract: one ``troupe`` namespace, layers that only look down, no file circles,
Ray only at the edge, small modules, and every subpackage installed.

Drawn from the source with :mod:`ast` (imports inside functions count, ``if TYPE_CHECKING:``
blocks don't), so a lazy import cannot hide a dependency from this test.
"""

from __future__ import annotations

import ast
import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDERS = {"runtime": "troupe.runtime", "actors": "troupe.actors", "tools": "troupe.tools", "evals": "troupe.evals"}

LAYERS: list[tuple[str, ...]] = [
    ("troupe.runtime.errors", "troupe.runtime.ids", "troupe.runtime.clock", "troupe.runtime.redact",
     "troupe.runtime.approval_policy", "troupe.runtime.safety", "troupe.runtime.secrets", "troupe.runtime.capabilities", "troupe.runtime.mcp_config", "troupe.runtime.a2a_config", "troupe.runtime.config", "troupe.runtime.messages", "troupe.runtime.events", "troupe.runtime.demo"),
    ("troupe.runtime.llm", "troupe.runtime.storage", "troupe.runtime.access"),
    ("troupe.tools", "troupe.runtime.eventlog", "troupe.runtime.memory", "troupe.runtime.knowledge",
     "troupe.runtime.skills"),
    ("troupe.runtime.otel",),
    ("troupe.runtime.agent", "troupe.runtime.sessiondiff", "troupe.runtime.planning"),
    ("troupe.runtime.session",),
    ("troupe.actors",),
    ("troupe.runtime.api", "troupe.runtime.replay", "troupe.runtime"),
    ("troupe.evals",),
    ("troupe.runtime.cli", "troupe.runtime.mcp_server", "troupe.runtime.acp", "troupe.runtime.server", "troupe.runtime.client", "troupe.runtime.a2a"),
]
"""Lowest first. A module may import its own layer or a lower one; ``troupe.runtime`` alone (the
facade's ``__init__``) names the public API of every layer, lazily."""

INDEPENDENT = [("troupe.runtime.llm", "troupe.runtime.storage"), ("troupe.tools", "troupe.runtime.eventlog")]
"""Siblings in one layer that must not import each other."""

RAY_EDGE = ("troupe.actors", "troupe.runtime.server.deploy")
"""Where ``ray`` may be imported. ``troupe.runtime.server.deploy`` is the Ray Serve binding of the HTTP API
(``serve.ingress`` over the interface layer's app, and its directory actor): it cannot live below the app."""
MAX_LINES = 500
MAX_MEDIAN_LINES = 200


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    imports: frozenset[str]
    lines: int


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    parts[0] = FOLDERS[parts[0]]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_lines(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                skip.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return skip


def _imports(path: Path, name: str, known: set[str]) -> tuple[set[str], set[str]]:
    """(internal modules imported, bare top-level names used: ``runtime``, ``tools``, ...)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    bare: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
        for target in targets:
            top = target.split(".")[0]
            if top in FOLDERS:
                bare.add(target)
            if target.startswith("troupe."):
                # the deepest known module the name refers to
                while target and target not in known:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    found.add(target)
    return found, bare


def _scan() -> tuple[dict[str, Module], dict[str, set[str]]]:
    paths = [p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py")) if "__pycache__" not in p.parts]
    names = {_module_name(p): p for p in paths}
    known = set(names)
    modules: dict[str, Module] = {}
    bare: dict[str, set[str]] = {}
    for name, path in names.items():
        found, bare_names = _imports(path, name, known)
        modules[name] = Module(name, path, frozenset(found), len(path.read_text().splitlines()))
        if bare_names:
            bare[name] = bare_names
    return modules, bare


MODULES, BARE = _scan()


def _layer(name: str) -> int:
    best, index = "", -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, index = prefix, i
    # troupe.runtime itself is the facade; its other children must be placed explicitly
    if best == "troupe.runtime" and name != "troupe.runtime":
        return -1
    return index


def test_every_module_has_a_layer() -> None:
    unplaced = sorted(n for n in MODULES if _layer(n) < 0)
    assert not unplaced, f"modules outside every layer (add them to LAYERS in {Path(__file__).name}): {unplaced}"


def test_every_import_is_namespaced() -> None:
    assert not BARE, f"imports of the folders by their bare names (use troupe.<name>): {BARE}"


def test_no_import_looks_up_a_layer() -> None:
    upward = sorted(
        f"{m.name} (layer {_layer(m.name)}) imports {target} (layer {_layer(target)})"
        for m in MODULES.values() for target in m.imports
        if m.name != "troupe.runtime" and _layer(target) > _layer(m.name)
    )
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_independent_siblings_do_not_import_each_other() -> None:
    crossing = sorted(
        f"{m.name} imports {target}"
        for a, b in INDEPENDENT
        for m in MODULES.values() for target in m.imports
        for x, y in ((a, b), (b, a))
        if (m.name == x or m.name.startswith(x + ".")) and (target == y or target.startswith(y + "."))
    )
    assert not crossing, "\n".join(crossing)


def _cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_file_circles() -> None:
    graph = {name: m.imports for name, m in MODULES.items()}
    circles = _cycles(graph)
    assert not circles, f"files that import each other in a circle: {circles}"


def test_ray_is_imported_only_at_the_edge() -> None:
    outside = []
    for m in MODULES.values():
        if m.name.startswith(RAY_EDGE):
            continue
        tree = ast.parse(m.path.read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n == "ray" or n.startswith("ray.") for n in names):
                outside.append(m.name)
    assert not outside, f"Ray imported outside troupe.actors: {sorted(set(outside))}"


def test_modules_are_small() -> None:
    sizes = {m.name: m.lines for m in MODULES.values() if m.path.name != "__init__.py" or m.lines > 20}
    big = {n: lines for n, lines in sizes.items() if lines > MAX_LINES}
    assert not big, f"modules over {MAX_LINES} lines (one concept per module): {big}"
    median = statistics.median(sizes.values())
    assert median <= MAX_MEDIAN_LINES, f"median module is {median} lines (at most {MAX_MEDIAN_LINES})"


def test_every_subpackage_is_installed() -> None:
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {_module_name(p) for folder in FOLDERS for p in (REPO / folder).rglob("__init__.py")}
    assert listed == on_disk, f"pyproject [tool.setuptools] packages: missing {sorted(on_disk - listed)}, " \
                              f"stale {sorted(listed - on_disk)}"


@pytest.mark.parametrize("cycle", [{"a": frozenset({"b"}), "b": frozenset({"a"})}])
def test_the_circle_finder_finds_a_circle(cycle: dict[str, frozenset[str]]) -> None:
    assert _cycles(cycle) == [["a", "b"]]
