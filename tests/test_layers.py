"""The apps are layers: each imports only the apps below it, so no two apps import each other.

Bottom to top (README, Architecture):

    msc_admin (its helpers: crypto, env, …), bounceparse   no feature app, bounceparse no Django
    accounts                                               tenants, users, memberships
    analytics                                              roll-ups, their counters, the feed
    channels → sending → bounces → staff                   the features, each above the last
    reports, demo                                          pages and commands over everything

Read from the source with ``ast``, without importing anything. A module-level import (anything
that runs when the module is imported, type-only imports included) must go down a layer; so
must an import deferred into a function, which would otherwise only hide a cycle. The project
package's wiring (urls, settings, celery, asgi, wsgi) imports every app and is left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LAYERS = {
    "msc_admin": 0,
    "bounceparse": 0,
    "accounts": 1,
    "analytics": 2,
    "channels": 3,
    "sending": 4,
    "bounces": 5,
    "staff": 6,
    "reports": 7,
    "demo": 7,
}
NOT_APPS = {"tests", "bench"}
WIRING = {f"msc_admin/{name}.py" for name in ("urls", "settings", "celery", "asgi", "wsgi")}


@dataclass(frozen=True)
class Import:
    source: str  # the importing app
    target: str  # the imported app
    where: str  # path:line and the module imported
    deferred: bool  # inside a function body

    def __str__(self) -> str:
        return f"{self.source} -> {self.target}: {self.where}" + (
            " (in a function)" if self.deferred else ""
        )


def _packages() -> list[str]:
    return sorted(
        p.name
        for p in ROOT.iterdir()
        if p.is_dir() and (p / "__init__.py").exists() and p.name not in NOT_APPS
    )


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    return [node.module] if node.module and node.level == 0 else []


def _walk(nodes: list[ast.stmt], deferred: bool, found: list[tuple[str, int, bool]]) -> None:
    for node in nodes:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.extend((name, node.lineno, deferred) for name in _imported(node))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            _walk(node.body, True, found)
        else:  # class bodies, if/try/with blocks (TYPE_CHECKING too) run at import time
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    _walk([child], deferred, found)
                elif isinstance(child, ast.excepthandler):
                    _walk(child.body, deferred, found)


def imports() -> list[Import]:
    """Every import of one app by another in the apps' source."""
    found: list[Import] = []
    for app in _packages():
        for path in sorted((ROOT / app).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name in WIRING:
                continue
            statements: list[tuple[str, int, bool]] = []
            _walk(ast.parse(path.read_text(), name).body, False, statements)
            for module, line, deferred in statements:
                target = module.split(".")[0]
                if target != app and target in LAYERS:
                    found.append(Import(app, target, f"{name}:{line} {module}", deferred))
    return found


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle of the app graph, each once, starting from its smallest app."""
    found: list[list[str]] = []

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt == start:
                found.append([*path, start])
            elif nxt > start and nxt not in path:
                visit(start, nxt, [*path, nxt])

    for start in sorted(edges):
        visit(start, start, [start])
    return found


def _cycle_report(ignore: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    module_level = [i for i in imports() if not i.deferred and (i.source, i.target) not in ignore]
    edges: dict[str, set[str]] = defaultdict(set)
    lines: dict[tuple[str, str], list[str]] = defaultdict(list)
    for i in module_level:
        edges[i.source].add(i.target)
        lines[(i.source, i.target)].append(i.where)
    report = []
    for cycle in cycles(edges):
        steps = [f"  {a} -> {b}: {'; '.join(lines[(a, b)])}" for a, b in pairwise(cycle)]
        report.append(" -> ".join(cycle) + "\n" + "\n".join(steps))
    return report


def _upward(ignore: frozenset[tuple[str, str]] = frozenset()) -> list[str]:
    return [
        str(i)
        for i in imports()
        if LAYERS[i.target] >= LAYERS[i.source] and (i.source, i.target) not in ignore
    ]


def test_every_package_has_a_layer() -> None:
    missing = [name for name in _packages() if name not in LAYERS]
    assert not missing, f"Give each new app a layer in LAYERS (and the README): {missing}"


def test_no_import_cycle_between_apps() -> None:
    report = _cycle_report()
    assert not report, "Apps that import each other at module level:\n" + "\n".join(report)


def test_each_app_imports_only_the_layers_below_it() -> None:
    wrong = _upward()
    assert not wrong, "Imports of an app in the same or a higher layer:\n" + "\n".join(wrong)


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The walker finds imports wherever they run, and a cycle is named with its imports."""
    source = (
        "import x.a\n"
        "from y import b\n"
        "if TYPE_CHECKING:\n    from z.c import C\n"
        "try:\n    import w\nexcept ImportError:\n    import v\n"
        "class K:\n    from u import d\n"
        "def f():\n    from t import e\n"
        "from . import relative\n"
    )
    found: list[tuple[str, int, bool]] = []
    _walk(ast.parse(source).body, False, found)
    assert found == [
        ("x.a", 1, False),
        ("y", 2, False),
        ("z.c", 4, False),
        ("w", 6, False),
        ("v", 8, False),
        ("u", 10, False),
        ("t", 12, True),
    ]
    graph = {"a": {"b"}, "b": {"c", "a"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "a"], ["a", "b", "c", "a"]]
