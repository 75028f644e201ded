"""The import graph: apps import only downwards (gallery ← people, ocr ← tagging), and no app has a module cycle.

Read with ``ast`` (every import, at module level or inside a function), so a
cycle hidden behind a function-level import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ("gallery", "tagging", "people", "ocr")
# What each app may import from the other apps: the gallery is the base; people and text in
# photos build on it; tagging (search, documents, export) reads all of them.
MAY_IMPORT = {"gallery": set(), "people": {"gallery"}, "ocr": {"gallery"}, "tagging": {"gallery", "people", "ocr"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for app in APPS
        for p in (ROOT / app).rglob("*.py")
        if "migrations" not in p.parts
    }


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    found.discard(module_name(path))
    return found


def graph() -> dict[str, set[str]]:
    modules = project_modules()
    # A package's __init__ is what "from pkg import x" loads first; leave it out of edges to itself.
    return {name: {m for m in imports_of(path, modules) if not name.startswith(m + ".")}
            for name, path in modules.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_apps_import_only_the_apps_below_them():
    offenders = {}
    for name, deps in graph().items():
        app = name.split(".")[0]
        wrong = sorted(m for m in deps if m.split(".")[0] != app and m.split(".")[0] not in MAY_IMPORT[app])
        if wrong:
            offenders[name] = wrong
    assert not offenders


def test_no_app_has_a_module_cycle():
    edges = graph()
    for app in APPS:
        inside = {name: {m for m in deps if m.startswith(app)} for name, deps in edges.items() if name.startswith(app)}
        assert find_cycle(inside) is None, f"cycle in {app}: {' → '.join(find_cycle(inside))}"


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
