"""Every third-party module the package, its tests and benches import comes from a
distribution ``pyproject.toml`` declares. CI's fresh environment catches a missing one
that nothing else brings; this catches one that only arrives with another package (h11
with uvicorn, numpy with pandas), which an upgrade of that package can drop."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("sprites_jupyter", "tests", "bench")
STDLIB_ONLY = REPO / "sprites_jupyter" / "remote"  # uploaded into sprites: standard library


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [*project["dependencies"],
                    *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {_normal(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in requirements}


def _imported_top_levels(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_every_imported_distribution_is_declared() -> None:
    ours = {path.stem for folder in SOURCES for path in (REPO / folder).rglob("*.py")}
    ours |= set(SOURCES)
    provided_by = importlib.metadata.packages_distributions()
    declared = _declared()
    undeclared = {}
    for folder in SOURCES:
        for path in (REPO / folder).rglob("*.py"):
            if STDLIB_ONLY in path.parents:
                continue
            for name in _imported_top_levels(path) - ours - set(sys.stdlib_module_names):
                distributions = provided_by.get(name, [])
                if distributions and not any(_normal(d) in declared for d in distributions):
                    undeclared.setdefault(name, str(path.relative_to(REPO)))
    assert not undeclared, f"add to pyproject.toml (module: first importer): {undeclared}"
