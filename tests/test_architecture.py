"""The structure docs/ARCHITECTURE.md describes, checked: no import cycles (lazy and type-only imports
count), and no internal import of a re-exported name (`polly.memory_utils`, `polly.memory_optimizer`
... stay public names for outside callers; inside, each name has one import path: where it is
defined). The layering rules themselves are ruff's (TID251, see tests/bot/test_app.py)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("polly", "bot", "cogs")
# Names a package's __init__ hands out lazily (module __getattr__) or re-exports on purpose.
ENTRY_POINTS = {"polly", "polly.ext", "polly.offline", "bot", "cogs"}


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            parts = path.relative_to(REPO_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


@cache
def tree(name: str) -> ast.Module:
    return ast.parse(modules()[name].read_text())


def imports(name: str) -> list[tuple[str, str | None, int]]:
    """(module, imported name or None, line) for every import in `name`: top-level, inside functions
    and under TYPE_CHECKING alike; a `from package import module` is an import of the module."""
    found = []
    is_package = modules()[name].name == "__init__.py"
    for node in ast.walk(tree(name)):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.append(
                    (submodule, None, node.lineno) if submodule in modules() else (base, alias.name, node.lineno)
                )
    return [(module, imported, line) for module, imported, line in found if module in modules()]


def defined_names(name: str) -> set[str]:
    """Names a module defines itself (functions, classes, assignments), not those it imports."""
    names: set[str] = set()
    for node in tree(name).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for target in targets for t in ast.walk(target) if isinstance(t, ast.Name)}
        elif isinstance(node, ast.If):  # try/except-free conditional definitions
            names |= {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    return names


def import_cycles() -> list[list[str]]:
    graph = {name: {module for module, _, _ in imports(name) if module != name} for name in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                connect(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            connect(node)
    return cycles


def test_there_is_no_import_cycle_not_even_a_lazy_or_type_only_one():
    assert import_cycles() == []


def test_inside_the_repository_each_name_is_imported_from_where_it_is_defined():
    reexported = []
    for name in modules():
        for module, imported, line in imports(name):
            if imported is None or module in ENTRY_POINTS or imported in defined_names(module):
                continue
            reexported.append(f"{modules()[name].relative_to(REPO_ROOT)}:{line}: {imported} via {module}")
    assert reexported == []


def test_the_checks_find_what_they_look_for(tmp_path, monkeypatch):
    """A cycle through a function-level import, and a re-exported name, are both reported."""
    fake = {
        "polly.a": "def f():\n    from polly.b import g\n",
        "polly.b": "from polly.a import f\n\ndef g():\n    pass\n",
        "polly.c": "from polly.b import f\n",
    }
    for name, source in fake.items():
        path = tmp_path / f"{name.split('.')[1]}.py"
        path.write_text(source)
    monkeypatch.setattr("tests.test_architecture.modules", lambda: {n: tmp_path / f"{n[6:]}.py" for n in fake})
    tree.cache_clear()
    try:
        assert import_cycles() == [["polly.a", "polly.b"]]
        assert [(m, n) for m, n, _ in imports("polly.c")] == [("polly.b", "f")]
        assert "f" not in defined_names("polly.b")
    finally:
        tree.cache_clear()


def test_the_tick_drawn_in_the_architecture_document_is_the_code_s():
    """Every isolated step of MonitorCycle.tick is drawn as such, and every file the document names
    exists (the document is kept true in the same commit as any change of structure)."""
    import re

    document = (REPO_ROOT / "docs" / "ARCHITECTURE.md").read_text()
    steps = re.findall(r'_isolated(?:_now)?\(\s*"([^"]+)"', (REPO_ROOT / "polly" / "monitor_cycle.py").read_text())
    assert len(steps) == 9
    for step in steps:
        assert f"[isolated] {step}" in document, step
    named = set(re.findall(r"(?<![\w*.])(?:\w+/)*\w+\.py\b", document)) - {"discord.py"}  # the library
    sources = {p.relative_to(REPO_ROOT).as_posix() for p in REPO_ROOT.glob("**/*.py") if ".venv" not in p.parts}
    missing = [n for n in named if not any(s == n or s.endswith("/" + n) for s in sources)]
    assert missing == []
