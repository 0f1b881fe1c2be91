"""Every notebook in notebooks/ runs top to bottom in a real kernel on the local backend,
twice in a row and as two copies at once, leaving nothing behind in its directory.

Kernels get no Sprites token and a private ``SPRITES_LOCAL_HOME``, so the extension starts
its own local server there and the user's data is never touched. The committed notebooks
must carry no outputs: they are the source, the outputs belong to whoever runs them (so
the check reads what git has committed, not a copy JupyterLab has autosaved with outputs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sprites_jupyter.local.storage.home import read_server_file
from tests.notebooks.cells import cells_only

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
KERNEL_CONFIG = REPO / "jupyter-config" / "ipython_kernel_config.py"


@pytest.fixture
def local_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A kernel environment on the local backend with a private home; stops its server."""
    for name in ("SPRITES_TOKEN", "SPRITE_TOKEN", "SPRITES_API_URL",
                 "SPRITES_JUPYTER_NO_WIDGETS"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "sprites-home"
    monkeypatch.setenv("SPRITES_LOCAL_HOME", str(home))
    yield home
    record = read_server_file(home)
    if record and isinstance(record.get("pid"), int):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record["pid"], signal.SIGTERM)


def test_there_are_notebooks_to_check() -> None:
    names = {path.name for path in NOTEBOOKS}
    assert {"quickstart.ipynb", "experiment-snapshots.ipynb"} <= names


def _committed(path: Path) -> nbformat.NotebookNode:
    """The notebook as committed (HEAD), or the file itself outside a git checkout."""
    shown = subprocess.run(["git", "-C", str(REPO), "show",
                            f"HEAD:{path.relative_to(REPO).as_posix()}"],
                           capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        return nbformat.read(path, as_version=4)
    return nbformat.reads(shown.stdout, as_version=4)


def _run(notebook: nbformat.NotebookNode, cwd: Path) -> None:
    NotebookClient(notebook, timeout=120, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()


def _log_panel_status(notebook: nbformat.NotebookNode) -> str:
    """The final status line of the followed log panel, from the saved widget state (a
    panel ends in the background, after its cell: nbclient keeps no later text for it)."""
    states = notebook.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    values = [model["state"].get("value") for model in states.values()]
    return " | ".join(value for value in values if isinstance(value, str)
                      and value.startswith("<b>") and "</b> <span" in value)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_notebook_carries_no_outputs(path: Path) -> None:
    notebook = _committed(path)
    nbformat.validate(notebook)
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert "widgets" not in notebook.metadata, f"{path.name}: stored widget state; clear it"


@pytest.mark.timeout(480)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_clean_twice_in_a_row(path: Path, tmp_path: Path,
                                            local_backend: Path) -> None:
    """Restart & Run All, twice, in one home; nothing is left next to the notebook."""
    beside = tmp_path / "notebook-dir"
    beside.mkdir()
    for _ in range(2):
        notebook = cells_only(path)
        _run(notebook, beside)
        assert notebook.metadata.widgets, "the widgets left no state: did they render?"
        if any(cell.source.startswith("%sprite logs") and "--follow" in cell.source
               for cell in notebook.cells):
            assert "stopped by request" in _log_panel_status(notebook), (
                "the log panel did not say that the service was stopped")
    assert any(local_backend.iterdir()), "the notebook did not use the private local backend"
    assert not list(beside.iterdir()), "the notebook left files in its directory"


@pytest.mark.timeout(480)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_two_copies_of_a_notebook_run_at_once(path: Path, tmp_path: Path,
                                              local_backend: Path) -> None:
    failures: list[BaseException] = []

    def run_copy() -> None:
        try:
            _run(cells_only(path), tmp_path)
        except BaseException as error:  # reported by the main thread below
            failures.append(error)

    copies = [threading.Thread(target=run_copy) for _ in range(2)]
    for copy in copies:
        copy.start()
    for copy in copies:
        copy.join()
    assert not failures, f"{path.name}: {failures[0]}"


@pytest.mark.timeout(480)
def test_readme_commands_on_a_fresh_clone(tmp_path: Path, local_backend: Path) -> None:
    """Command 1 (the quick start in JupyterLab, which autosaves it with outputs next to
    itself), then command 2's notebook checks, in a fresh clone of what is committed."""
    if not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to clone")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    saved = clone / "notebooks" / "quickstart.ipynb"
    notebook = nbformat.read(saved, as_version=4)
    _run(notebook, saved.parent)
    nbformat.write(notebook, saved)
    status = subprocess.run(["git", "-C", str(clone), "status", "--porcelain"],
                            capture_output=True, text=True, check=True).stdout.splitlines()
    assert status == [" M notebooks/quickstart.ipynb"], "the quick start left files behind"
    checks = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/notebooks/test_notebooks.py", "-k", "carries_no_outputs"],
        cwd=clone, env={**os.environ, "PYTHONPATH": str(clone)}, capture_output=True,
        text=True, check=False)
    assert checks.returncode == 0, checks.stdout[-2000:]


def test_jupyter_config_loads_the_extension_in_a_kernel(tmp_path: Path,
                                                        local_backend: Path) -> None:
    probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        'magics = get_ipython().magics_manager.magics\n'
        'print("sprite" in magics["line"], "sprite_exec" in magics["cell"])')])
    client = NotebookClient(probe, timeout=60, kernel_name="python3",
                            extra_arguments=[f"--config={KERNEL_CONFIG}"],
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert probe.cells[0].outputs[0].text.strip() == "True True"
