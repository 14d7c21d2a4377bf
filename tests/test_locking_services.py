"""Every row lock in the app code is taken inside a transaction: a linter, on the source.

``select_for_update()`` outside a transaction is an error in autocommit, which is how production
serves each request, and a test wrapped in a transaction never sees it (bounce-spike protection
shipped that way). So each function that calls it must open the transaction itself, with
``@transaction.atomic`` or a ``with transaction.atomic():`` block around the call, or else be
called only from such places (a helper such as ``bounces.spikes.check``, which runs inside the
transaction that recorded the bounces): every call of it, followed up the chain by name, must
reach a transaction. The production-mode walk (``tests/test_site_walk.py``) exercises the pages
that use these services in autocommit.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_APP = {"tests", "bench"}


def app_sources() -> dict[str, str]:
    """The first-party packages' modules, by path relative to the repository."""
    found = {}
    for package in sorted(ROOT.iterdir()):
        if package.name in NOT_APP or not (package / "__init__.py").is_file():
            continue
        for path in sorted(package.rglob("*.py")):
            if "migrations" not in path.parts:
                found[str(path.relative_to(ROOT))] = path.read_text()
    return found


def _is_atomic(node: ast.expr) -> bool:
    """``transaction.atomic`` or ``atomic``, called (with options) or not."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr == "atomic"
    return isinstance(node, ast.Name) and node.id == "atomic"


def module_of(path: str) -> str:
    """bounces/spikes.py -> bounces.spikes; a package's __init__.py -> the package."""
    parts = path.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, module: str, is_package: bool) -> dict[str, str]:
    """Each name a module binds by import (at any depth), to the dotted thing it names."""
    package = module if is_package else module.rpartition(".")[0]
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                bound[alias.asname or alias.name.partition(".")[0]] = (
                    alias.name if alias.asname else alias.name.partition(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{base}.{alias.name}"
    return bound


@dataclass
class Function:
    key: str  # "bounces.spikes.check"
    where: str  # "path:line"
    name: str
    atomic: bool  # decorated with transaction.atomic
    bare_locks: list[int] = field(default_factory=list)  # lines locking outside an atomic block
    # Calls of our own functions it makes: (their key, line, inside a transaction it opened)
    calls: list[tuple[str, int, bool]] = field(default_factory=list)
    covered_locks: int = 0


class _Collector(ast.NodeVisitor):
    def __init__(self, path: str, tree: ast.Module) -> None:
        self.path = path
        self.module = module_of(path)
        self.imports = _imports(tree, self.module, path.endswith("__init__.py"))
        self.top_level = {
            n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        self.functions: list[Function] = []
        self.stack: list[Function] = []
        self.atomic_depth = [0]

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        function = Function(
            key=f"{self.module}.{node.name}",
            where=f"{self.path}:{node.lineno}",
            name=node.name,
            atomic=any(_is_atomic(d) for d in node.decorator_list),
        )
        self.functions.append(function)
        self.stack.append(function)
        self.atomic_depth.append(0)
        for statement in node.body:
            self.visit(statement)
        self.atomic_depth.pop()
        self.stack.pop()

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function

    def _with(self, node: ast.With | ast.AsyncWith) -> None:
        opens = any(_is_atomic(item.context_expr) for item in node.items)
        for item in node.items:
            self.visit(item.context_expr)
        self.atomic_depth[-1] += opens
        for statement in node.body:
            self.visit(statement)
        self.atomic_depth[-1] -= opens

    visit_With = _with
    visit_AsyncWith = _with

    def _target(self, call: ast.Call) -> str | None:
        """The key of the function a call reaches, when it is one of ours by name or module:
        ``name()`` defined here or imported, ``module.name()``, ``self.name()``."""
        func = call.func
        if isinstance(func, ast.Name):
            if func.id in self.imports:
                return self.imports[func.id]
            return f"{self.module}.{func.id}" if func.id in self.top_level else None
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            owner = func.value.id
            if owner in ("self", "cls"):
                return f"{self.module}.{func.attr}"
            if owner in self.imports:
                return f"{self.imports[owner]}.{func.attr}"
        return None

    def visit_Call(self, node: ast.Call) -> None:
        if self.stack:
            function = self.stack[-1]
            covered = function.atomic or self.atomic_depth[-1] > 0
            if isinstance(node.func, ast.Attribute) and node.func.attr == "select_for_update":
                if covered:
                    function.covered_locks += 1
                else:
                    function.bare_locks.append(node.lineno)
            elif target := self._target(node):
                function.calls.append((target, node.lineno, covered))
        self.generic_visit(node)


def collect(sources: dict[str, str]) -> list[Function]:
    functions: list[Function] = []
    for path, text in sources.items():
        tree = ast.parse(text, filename=path)
        collector = _Collector(path, tree)
        collector.visit(tree)
        functions += collector.functions
    return functions


def reexports(sources: dict[str, str]) -> dict[str, str]:
    """Names a module binds at its top by importing them (a package's ``__init__`` that
    re-exports its modules' services): ``sending.services.step_add`` ->
    ``sending.services.campaigns.step_add``."""
    found = {}
    for path, text in sources.items():
        module = module_of(path)
        top = ast.Module(
            body=[n for n in ast.parse(text).body if isinstance(n, ast.ImportFrom)],
            type_ignores=[],
        )
        for name, target in _imports(top, module, path.endswith("__init__.py")).items():
            found[f"{module}.{name}"] = target
    return found


def locks_outside_a_transaction(sources: dict[str, str]) -> list[str]:
    """Why each unsafe lock is unsafe; empty when every lock is inside a transaction."""
    functions = collect(sources)
    aliases = reexports(sources)

    def defined(key: str) -> str:
        seen = set()
        while key in aliases and key not in seen:
            seen.add(key)
            key = aliases[key]
        return key

    callers: dict[str, list[tuple[Function, int, bool]]] = {}
    for function in functions:
        for key, line, covered in function.calls:
            callers.setdefault(defined(key), []).append((function, line, covered))

    def unsafe_path(function: Function, seen: frozenset[str]) -> str | None:
        """How ``function`` can be reached without a transaction (None when it cannot)."""
        calls = callers.get(function.key, [])
        if not calls:
            return f"{function.name}() is never called from a transaction"
        for caller, line, covered in calls:
            if covered:
                continue
            where = f"{caller.where.rsplit(':', 1)[0]}:{line}"
            if caller.key in seen:
                return f"{function.name}() is called in a cycle at {where}"
            deeper = unsafe_path(caller, seen | {caller.key})
            if deeper:
                return (
                    f"{function.name}() is called outside a transaction by {caller.name}() "
                    f"at {where}; {deeper}"
                )
        return None

    problems = []
    for function in functions:
        if function.bare_locks:
            why = unsafe_path(function, frozenset({function.key}))
            if why:
                lines = ", ".join(map(str, function.bare_locks))
                problems.append(
                    f"{function.where} {function.name}() locks rows (line {lines}) with no "
                    f"transaction of its own, and {why}"
                )
    return problems


def test_every_row_lock_in_the_app_is_inside_a_transaction() -> None:
    problems = locks_outside_a_transaction(app_sources())
    assert not problems, "\n".join(problems)


def test_the_check_sees_the_locks_it_must() -> None:
    """Every lock in the app code is found (the check is not vacuous): at least the services
    the walk reaches, among them bounce-spike protection."""
    locking = {f.name for f in collect(app_sources()) if f.bare_locks or f.covered_locks}
    assert {
        "team_settings_update",
        "fresh_access_token",
        "tenant_unflag_legacy",
        "membership_change_role",
        "undo",
        "resolve",
        "webhook_issue",
        "step_add",
        "check",
    } <= locking


SAFE = """
from django.db import transaction
from django.db.transaction import atomic

@transaction.atomic
def decorated():
    Row.objects.select_for_update().get()

@atomic(savepoint=False)
def decorated_with_options():
    Row.objects.select_for_update().get()

def with_block():
    prepare()
    with transaction.atomic():
        list(Row.objects.select_for_update())

def _helper():
    Row.objects.select_for_update().first()

def public_caller():
    _helper()

@transaction.atomic
def service():
    public_caller()

def task():
    with transaction.atomic():
        _helper()
"""


def test_the_check_accepts_atomic_services_and_helpers_called_only_from_them() -> None:
    assert locks_outside_a_transaction({"safe.py": SAFE}) == []


def test_the_check_refuses_a_lock_without_a_transaction() -> None:
    missing_decorator = SAFE.replace("@transaction.atomic\ndef decorated()", "def decorated()")
    [problem] = locks_outside_a_transaction({"a.py": missing_decorator})
    assert "decorated() locks rows" in problem and "never called from a transaction" in problem

    lock_after_block = SAFE.replace(
        "        list(Row.objects.select_for_update())",
        "        pass\n    list(Row.objects.select_for_update())",
    )
    [problem] = locks_outside_a_transaction({"b.py": lock_after_block})
    assert "with_block() locks rows" in problem

    # A helper is as safe as its least safe caller, however far up the chain.
    unsafe_caller = SAFE + "\ndef view():\n    public_caller()\n"
    [problem] = locks_outside_a_transaction({"c.py": unsafe_caller})
    assert "_helper() is called outside a transaction by public_caller()" in problem
    assert "public_caller() is called outside a transaction by view() at c.py:" in problem


def test_the_check_follows_a_call_through_a_package_that_re_exports_the_function() -> None:
    package = {
        "pkg/__init__.py": "from pkg.mod import public_caller\n",
        "pkg/mod.py": SAFE,
        "views.py": "from pkg import public_caller\n\ndef view():\n    public_caller()\n",
    }
    [problem] = locks_outside_a_transaction(package)
    assert "public_caller() is called outside a transaction by view() at views.py:4" in problem
