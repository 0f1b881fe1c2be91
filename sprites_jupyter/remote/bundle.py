"""One program from several modules of ``remote/``, for a sprite that is sent a single
source on stdin (``python3 - ARGS``) and has nothing of ours installed.

:func:`build` (run by the client) gives this file's own source followed by a call to
:func:`boot` with the sources of a main module and of every sibling it imports, relatively
(``from .x import y``), at any depth. In the sprite :func:`boot` serves those sources
to the import system as one package (a meta path finder: ``importlib``'s documented
hooks) and runs the main module as ``__main__``, as ``python3 x.py`` would. Standard
library only, Python 3.8+; the modules keep being ordinary, checked, testable files.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import runpy
import sys
from types import CodeType, ModuleType
from typing import Sequence

PACKAGE = "sprite_program"
"""The name the bundled modules import each other under, inside the sprite."""


class BundledSources(importlib.abc.MetaPathFinder, importlib.abc.InspectLoader):
    """Finds and loads the modules of one package from sources held in memory."""

    def __init__(self, package: str, sources: dict[str, str]) -> None:
        self.package = package
        self.sources = sources

    def _module(self, fullname: str) -> str | None:
        if fullname == self.package:
            return ""
        head, _, name = fullname.rpartition(".")
        return name if head == self.package and name in self.sources else None

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        name = self._module(fullname)
        if name is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=not name)

    def is_package(self, fullname: str) -> bool:
        return self._module(fullname) == ""

    def get_source(self, fullname: str) -> str:
        name = self._module(fullname)
        if name is None:
            raise ImportError(f"{fullname} is not bundled", name=fullname)
        return self.sources[name] if name else ""

    def get_code(self, fullname: str) -> CodeType:
        """The module's code, named ``PACKAGE/NAME.py`` so that a traceback says which
        module failed, not ``<string>``."""
        name = self._module(fullname)
        path = f"{self.package}/{name or '__init__'}.py"
        return self.source_to_code(self.get_source(fullname), path)


def boot(sources: dict[str, str], main: str) -> None:
    """Make ``sources`` (module name: source) importable as :data:`PACKAGE` and run
    ``main`` as the program."""
    sys.meta_path.insert(0, BundledSources(PACKAGE, sources))
    runpy.run_module(f"{PACKAGE}.{main}", run_name="__main__", alter_sys=True)


def build(main: str) -> str:
    """The program that runs ``main`` (a module of ``remote/``, by name) with the modules it
    imports from ``remote/``: Python source that needs nothing but the standard library."""
    sources = bundled_sources(main)
    return f"{own_source()}\n\nboot({sources!r}, {main!r})\n"


def bundled_sources(main: str) -> dict[str, str]:
    """``main``'s source and those of the sibling modules it imports, at any depth."""
    found: dict[str, str] = {}
    pending: list[str] = [main]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        found[name] = _source(name)
        pending.extend(sibling_imports(found[name], name))
    return found


def sibling_imports(source: str, name: str) -> list[str]:
    """The modules of the same package that ``source`` imports (``from .x import y``,
    ``from . import x``)."""
    import ast

    named: list[str] = []
    for node in ast.walk(ast.parse(source, f"{name}.py")):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        if node.level > 1 or (node.module and "." in node.module):
            raise ValueError(f"{name}.py imports from outside its own folder "
                             f"(level {node.level}, {node.module}): a bundle cannot carry it")
        named.extend([node.module] if node.module else [alias.name for alias in node.names])
    return named


def _source(name: str) -> str:
    import importlib.resources

    try:
        return (importlib.resources.files(__name__.rpartition(".")[0])
                .joinpath(f"{name}.py").read_text("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"no module {name}.py beside bundle.py to bundle") from None


def own_source() -> str:
    return _source("bundle")
