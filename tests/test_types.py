"""The package's type hints hold: mypy finds no error (its settings: pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("mypy", reason="mypy is in the [test] extra")


def test_mypy_finds_no_error_in_the_package() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "sprites_jupyter"], cwd=ROOT,
                          capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout + done.stderr
