"""Every notebook in notebooks/ runs top to bottom in a real kernel on the local backend.

Kernels get no Sprites token and a private ``SPRITES_LOCAL_HOME``, so the extension starts
its own local server there and the user's data is never touched. The committed notebooks
must carry no outputs: they are the source, the outputs belong to whoever runs them.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from sprites_jupyter.local.storage.home import read_server_file

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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_committed_notebook_carries_no_outputs(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    dirty = [index for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} carry outputs; clear them before committing"
    assert "widgets" not in notebook.metadata, f"{path.name}: stored widget state; clear it"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_notebook_runs_clean_on_the_local_backend(path: Path, tmp_path: Path,
                                                  local_backend: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    assert notebook.metadata.widgets, "the widgets left no state: did they render at all?"
    assert any(local_backend.iterdir()), "the notebook did not use the private local backend"


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
