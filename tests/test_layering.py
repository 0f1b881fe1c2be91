"""The layering rules of ARCHITECTURE.md, read from every import statement of the
package's source (function-level and type-only imports count too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sprites_jupyter"


def _imports(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            names.add(target)
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        for name in sorted(_imports(path)):
            if any(name == f or name.startswith(f"{f}.") for f in forbidden):
                found.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return found


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("client", ("IPython", "ipywidgets", "pandas", "sprites_jupyter.local",
                "sprites_jupyter.magics", "sprites_jupyter.magic_commands",
                "sprites_jupyter.widgets", "sprites_jupyter.frames")),
    ("local", ("sprites_jupyter.client", "IPython", "ipywidgets")),
])
def test_layers_import_only_what_the_rules_allow(folder: str, forbidden: tuple[str, ...]) -> None:
    assert _violations(folder, forbidden) == []


def test_the_rule_reader_sees_relative_and_function_level_imports() -> None:
    found = _imports(PACKAGE / "backend.py")
    assert "sprites_jupyter.local.launcher" in found  # imported inside a function
    assert "sprites_jupyter.client.http" in found     # a relative import


def test_the_domain_speaks_no_http() -> None:
    """runtime/ and storage/ (and the helpers they share) import nothing of Starlette or
    of the HTTP layer, and choose no HTTP status."""
    forbidden = ("starlette", "uvicorn", "sprites_jupyter.local.api")
    for folder in ("local/runtime", "local/storage"):
        assert _violations(folder, forbidden) == []
    for shared in ("wire.py", "errors.py"):
        names = _imports(PACKAGE / "local" / shared)
        assert not [n for n in names if n.split(".")[0] in ("starlette", "uvicorn")], shared


_IMPORT_THE_DOMAIN = """
import importlib, pkgutil, sys
import sprites_jupyter.local.runtime as runtime, sprites_jupyter.local.storage as storage
for package in (runtime, storage):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
print(sorted(n for n in sys.modules if n.split(".")[0] in ("starlette", "uvicorn")
             or n.startswith("sprites_jupyter.local.api")))
"""


def test_importing_the_whole_domain_loads_no_http_layer() -> None:
    done = subprocess.run([sys.executable, "-c", _IMPORT_THE_DOMAIN], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _module_graph() -> dict[str, set[str]]:
    """Each module of the package and the package modules it imports."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        graph[name] = set()
        for imported in _imports(path):
            parts = imported.split(".")
            target = next((".".join(parts[:n]) for n in range(len(parts), 0, -1)
                           if ".".join(parts[:n]) in modules), None)
            if target is not None and target != name:
                graph[name].add(target)
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))
    return found


def test_no_import_circles_not_even_type_only_ones() -> None:
    assert _circles(_module_graph()) == []


def test_the_circle_finder_finds_a_circle() -> None:
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
