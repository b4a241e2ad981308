"""The layer rule of docs/architecture.md, checked by reading every module's imports (ast).

Layers, lowest first; a module may import its own layer and the ones below, never above:

    core        cbir (the package marker), cbir.core.*   errors, configuration, progress
    features    features.*                               image -> vector
    indexing    indexing.*                               datasets, stores, Ray encoding, search
    evaluation  evaluation.*                             TREC files, measures, tuning grids
    stages      cbir.stages.*, benchmarks.*              one function per subcommand
    interface   cbir.cli, cbir.commands.*, cbir.terminal, cbir.web.*, app, docs.*, notebooks.*

Every import counts for the order, also one inside a function or under `if TYPE_CHECKING:`:
a lazy import is still a dependency. For cycles, imports under `if TYPE_CHECKING:` do not
count (they never run: an extractor's fitting module may name the extractor's type). `from package import name` names the submodule `package.name` when
there is one. Besides the order: no import cycle between modules, packaged code never
imports `tests`, and tqdm is imported only by the interface layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("cbir.core",)),
    ("features", ("features",)),
    ("indexing", ("indexing",)),
    ("evaluation", ("evaluation",)),
    ("stages", ("cbir.stages", "benchmarks")),
    (
        "interface",
        ("cbir.cli", "cbir.commands", "cbir.terminal", "cbir.web", "app", "docs", "notebooks"),
    ),
)
PROJECT = (
    "cbir",
    "features",
    "indexing",
    "evaluation",
    "benchmarks",
    "app",
    "docs",
    "notebooks",
    "tests",
)
SOURCES = (
    "cbir",
    "features",
    "indexing",
    "evaluation",
    "benchmarks",
    "docs",
    "notebooks",
    "app.py",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files: list[Path] = []
    for source in SOURCES:
        path = ROOT / source
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return {module_name(f): f for f in files}


def layer_of(module: str) -> int | None:
    if module == "cbir":
        return 0  # the package marker: a docstring and __version__
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def type_only_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return found


def imports_of(path: Path, modules: dict[str, Path], *, type_only: bool = True) -> set[str]:
    """Every module `path` imports: project modules resolved, others by top-level name."""
    found: set[str] = set()
    tree = ast.parse(path.read_text(), str(path))
    skip = set() if type_only else type_only_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def test_every_module_has_a_layer(graph):
    assert [m for m in graph if layer_of(m) is None] == []


def test_no_module_imports_upward_or_tests(graph):
    upward = []
    for module, imported in sorted(graph.items()):
        rank = layer_of(module)
        for target in sorted(imported):
            if target.split(".")[0] == "tests":
                upward.append(f"{module} -> {target} (packaged code imports tests)")
            elif target.split(".")[0] in PROJECT and (layer_of(target) or 0) > rank:
                upward.append(
                    f"{module} ({LAYERS[rank][0]}) -> {target} ({LAYERS[layer_of(target)][0]})"
                )
    assert upward == []


def test_tqdm_only_in_the_interface_layer(graph):
    interface = len(LAYERS) - 1
    drawing = [m for m, imported in graph.items() if "tqdm" in {t.split(".")[0] for t in imported}]
    assert [m for m in drawing if layer_of(m) != interface] == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among project modules as [a, b, ..., a], or None (iterative DFS)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start] & graph.keys()))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt] & graph.keys())))
    return None


def test_no_import_cycles():
    modules = project_modules()
    runtime = {name: imports_of(path, modules, type_only=False) for name, path in modules.items()}
    assert find_cycle(runtime) is None


def test_the_checks_can_fail():
    """The checker itself: a planted cycle is found, a planted upward import has a higher layer."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert layer_of("features.base") < layer_of("indexing.search") < layer_of("cbir.stages.index")
    assert layer_of("cbir.core.errors") == 0 and layer_of("app") == len(LAYERS) - 1
    assert layer_of("cbir.web.api") == len(LAYERS) - 1
