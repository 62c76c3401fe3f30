"""The import graph of the installed package keeps its layers and has no cycle.

Layers (:mod:`plantmrv.app` says why): the core (``plantmrv`` and its subpackages but those
below) imports no service and not the application; a service (``plantmrv.gateway``,
``.ingest``, ``.analytics``, ``.dashboards``, ``.simulators``, ``.api``) does not import the
application; only the application (``plantmrv.app``) and the ``__main__`` entry points see
everything, and nothing imports an entry point. Every import counts, a function's lazy one too,
and so does a module named in a string (``importlib.import_module("plantmrv.x")``,
``"plantmrv.x:func"``); an import under ``if TYPE_CHECKING:`` never runs and does not. The graph
is read from the source files (AST) of the packages pyproject.toml installs, wherever the
install put them; nothing is imported but the packages themselves to find their folders.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("plantmrv.gateway", "plantmrv.ingest", "plantmrv.analytics", "plantmrv.dashboards", "plantmrv.simulators", "plantmrv.api")
APPLICATION = "plantmrv.app"
MODULE_STRING = re.compile(r"^(plantmrv(?:\.\w+)+)(?::\w+)?$")


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    file: Path
    line: int

    def __str__(self) -> str:
        where = self.file.relative_to(ROOT) if self.file.is_relative_to(ROOT) else self.file
        return f"{where}:{self.line}: {self.source} imports {self.target}"


def installed_modules() -> dict[str, Path]:
    """Module name -> source file, for every module of every package pyproject.toml installs."""
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    modules = {}
    for package in packages:
        spec = importlib.util.find_spec(package)
        assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
        folder = Path(next(iter(spec.submodule_search_locations)))
        for file in sorted(folder.glob("*.py")):
            modules[package if file.stem == "__init__" else f"{package}.{file.stem}"] = file
    return modules


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        parent = parents[node]
        if isinstance(parent, ast.If) and node in parent.body and ast.unparse(parent.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            return True
        node = parent
    return False


def _docstrings(tree: ast.Module) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module ``name`` imports from the package: itself or its nearest enclosing module."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name if name in modules else None


def imports_of(module: str, file: Path, modules: dict[str, Path]) -> list[Import]:
    tree = ast.parse(file.read_text(encoding="utf-8"), str(file))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    docstrings = _docstrings(tree)
    package = module if file.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = []

    def add(node: ast.AST, name: str) -> None:
        target = _known(name, modules)
        if target is not None and target != module and not _type_checking_only(node, parents):
            out.append(Import(module, target, file, node.lineno))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(node, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # `from pkg import mod` imports the module pkg.mod
                add(node, f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if m := MODULE_STRING.match(node.value):
                add(node, m.group(1))
    return out


def layer(module: str) -> str:
    if module.rsplit(".", 1)[-1] == "__main__":
        return "entry point"
    if module == APPLICATION or module.startswith(APPLICATION + "."):
        return "application"
    if any(module == s or module.startswith(s + ".") for s in SERVICES):
        return "service"
    return "core"


def graph() -> list[Import]:
    modules = installed_modules()
    return [imp for module, file in modules.items() for imp in imports_of(module, file, modules)]


def test_the_graph_is_read_from_every_installed_package():
    modules = installed_modules()
    for name in ("plantmrv.config", "plantmrv.app.cli", "plantmrv.gateway.agent", "plantmrv.api.app", "plantmrv.__main__"):
        assert name in modules, name
    edges = {(i.source, i.target) for i in graph()}
    # a lazy import inside a function, a relative one and an `import a.b` all count
    assert ("plantmrv.gateway.config", "plantmrv.gateway.agent") in edges
    assert ("plantmrv.analytics.config", "plantmrv.analytics.registry") in edges
    assert ("plantmrv.app.cli", "plantmrv.gateway.cli") in edges  # named in a string, mounted by importlib


def test_the_core_imports_no_service_and_nothing_imports_the_application():
    allowed = {
        "core": {"core"},
        "service": {"core", "service"},
        "application": {"core", "service", "application"},
        "entry point": {"core", "service", "application"},
    }
    wrong = [f"{imp} ({layer(imp.source)} -> {layer(imp.target)})" for imp in graph() if layer(imp.target) not in allowed[layer(imp.source)]]
    if wrong:
        pytest.fail("imports against the layers:\n" + "\n".join(wrong), pytrace=False)


def find_cycle(edges: list[Import]) -> list[Import] | None:
    """One cycle of the graph as the imports that close it, or None."""
    out: dict[str, list[Import]] = {}
    for imp in edges:
        out.setdefault(imp.source, []).append(imp)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[Import] = []

    def visit(module: str) -> list[Import] | None:
        state[module] = 1
        for imp in out.get(module, []):
            if state.get(imp.target) == 1:
                start = next(i for i, p in enumerate(path) if p.source == imp.target) if imp.target != module else len(path)
                return path[start:] + [imp]
            if imp.target not in state:
                path.append(imp)
                found = visit(imp.target)
                if found:
                    return found
                path.pop()
        state[module] = 2
        return None

    for module in sorted(out):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_the_import_graph_has_no_cycle():
    cycle = find_cycle(graph())
    if cycle:
        pytest.fail("import cycle:\n" + "\n".join(str(imp) for imp in cycle), pytrace=False)


def test_a_cycle_is_reported_as_the_chain_that_closes_it():
    f = Path("x.py")
    edges = [Import("a", "b", f, 1), Import("b", "c", f, 2), Import("c", "b", f, 3), Import("c", "d", f, 4)]
    assert [(i.source, i.target) for i in find_cycle(edges)] == [("b", "c"), ("c", "b")]
    assert find_cycle(edges[:2] + edges[3:]) is None
