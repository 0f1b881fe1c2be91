"""The oldest Python a sprite may have (3.8), when this machine has one: the programs of
``remote/`` are run under it too."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path


@cache
def python38() -> str | None:
    """A working Python 3.8 on this machine (on PATH, or kept by pyenv), if any."""
    candidates = [shutil.which("python3.8"),
                  *map(str, Path.home().glob(".pyenv/versions/3.8*/bin/python3.8"))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2])"],
                               capture_output=True, text=True, check=False)
        if probe.returncode == 0 and probe.stdout.strip() == "(3, 8)":
            return candidate
    return None
