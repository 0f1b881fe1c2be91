"""The package's type hints hold: mypy finds no error (its settings: pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("mypy", reason="mypy is in the [test] extra")


def _mypy(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_no_error_in_the_package() -> None:
    _mypy("sprites_jupyter")


def test_mypy_finds_no_error_in_the_programs_run_inside_a_sprite() -> None:
    """remote/ runs on a sprite's Python 3.8+: ruff holds it to 3.8 syntax; mypy checks
    its types at the oldest version it can target, each program on its own."""
    programs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "sprites_jupyter" / "remote")
                      .glob("*.py") if p.name != "__init__.py")
    _mypy("--python-version", "3.10", "--follow-imports=silent", *programs)
