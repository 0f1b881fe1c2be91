"""The layering rules of ARCHITECTURE.md, read from every import statement of the
package's source (function-level and type-only imports count too)."""

from __future__ import annotations

import ast
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
