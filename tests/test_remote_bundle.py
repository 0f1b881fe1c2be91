"""The bundler of ``remote/``: several modules sent to a sprite's ``python3`` as one program
on stdin, run here as a sprite runs it (``python3 -I -``: isolated, so nothing of this
checkout or its environment is importable), under Python 3.8 too when this machine has it."""

from __future__ import annotations

import json
import subprocess

import pytest

from sprites_jupyter.remote.bundle import (
    PACKAGE,
    build,
    bundled_sources,
    own_source,
    sibling_imports,
)
from tests.oldest_python import python38

PYTHONS = ["python3", *filter(None, [python38()])]
DIFF_MODULES = {"diff_helper", "diff_views", "diff_mounts", "diff_trees", "diff_files"}


def run(program: str, *args: str, python: str = "python3") -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-I", "-", *args], input=program, capture_output=True,
                          text=True, timeout=60, check=False)


def program_of(sources: dict[str, str], main: str) -> str:
    """A bundle of hand-written modules, put together as :func:`build` puts ours."""
    return f"{own_source()}\n\nboot({sources!r}, {main!r})\n"


def test_the_bundle_carries_what_its_main_imports_at_any_depth_and_nothing_else() -> None:
    sources = bundled_sources("diff_helper")
    assert set(sources) == DIFF_MODULES  # diff_mounts reaches diff_views a second level down
    assert "from .diff_views import" in sources["diff_mounts"]


@pytest.mark.parametrize("python", PYTHONS)
def test_the_diff_program_runs_across_its_modules_with_only_the_standard_library(
        python: str) -> None:
    request = {"op": "list", "a": "v9", "path": "/", "checkpoints": "/nonexistent-checkpoints"}
    done = run(build("diff_helper"), json.dumps(request), python=python)
    assert done.stderr == ""
    assert done.returncode == 3  # the Refusal of diff_views, caught by diff_helper's main
    assert json.loads(done.stdout) == {"error": "not-mounted", "id": "v9", "mounted": []}


@pytest.mark.parametrize("python", PYTHONS)
def test_the_main_runs_as_the_program_with_its_arguments_and_exit_status(python: str) -> None:
    sources = {"main": "import sys\nfrom . import words\n"
                       "print(__name__, words.JOINED.join(sys.argv[1:]))\nsys.exit(7)\n",
               "words": "JOINED = '+'\n"}
    done = run(program_of(sources, "main"), "a b", "c", python=python)
    assert (done.returncode, done.stdout, done.stderr) == (7, "__main__ a b+c\n", "")


def test_a_failure_inside_a_bundled_module_names_the_module_and_line() -> None:
    sources = {"main": "from .deep import fail\nfail()\n",
               "deep": "def fail():\n    raise RuntimeError('boom')\n"}
    done = run(program_of(sources, "main"))
    assert done.returncode == 1
    assert f'File "{PACKAGE}/deep.py", line 2, in fail' in done.stderr
    assert done.stderr.rstrip().endswith("RuntimeError: boom")


def test_a_module_the_bundle_does_not_hold_is_an_import_error_naming_it() -> None:
    done = run(program_of({"main": "from . import missing\n"}, "main"))
    assert done.returncode == 1
    assert "ImportError: cannot import name 'missing'" in done.stderr


def test_building_refuses_what_a_bundle_cannot_carry() -> None:
    with pytest.raises(ValueError, match=r"no module nowhere\.py beside bundle\.py"):
        bundled_sources("nowhere")
    with pytest.raises(ValueError, match="imports from outside its own folder"):
        sibling_imports("from ..client import Sprite\n", "agent")
