"""Saving in JupyterLab keeps the repository's notebooks free of outputs (command 1 of the
README leaves nothing to commit by accident): a real Jupyter server started as command 1
starts it (``JUPYTER_CONFIG_PATH=jupyter-config``), saving through its contents API, the
path JupyterLab's save and autosave take."""

from __future__ import annotations

from pathlib import Path

import httpx
import nbformat
import pytest

from sprites_jupyter.notebook_save import METADATA_KEY, STRIP_FLAG
from tests.browser.lab import running_jupyterlab
from tests.notebooks.cells import cells_only

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
CONFIG_PATH = REPO / "jupyter-config"  # what command 1 puts on JUPYTER_CONFIG_PATH
SIGN_IN = "http://demo.localhost:8000/.sprite/login?ticket=one-time"


def _with_a_run(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` as a run leaves it in JupyterLab: outputs, counts, widget state."""
    for count, cell in enumerate(c for c in notebook.cells if c.cell_type == "code"):
        cell.execution_count = count + 1
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="ran\n"),
                        nbformat.v4.new_output("display_data", data={
                            "text/html": f'<iframe src="{SIGN_IN}"></iframe>'})]
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": {"m1": {"model_name": "HTMLModel", "state": {"value": "<b>done</b>"}}},
        "version_major": 2, "version_minor": 0}}
    return notebook


def test_the_repository_notebooks_ask_to_be_saved_without_outputs() -> None:
    for path in NOTEBOOKS:
        metadata = nbformat.read(path, as_version=4).metadata
        assert metadata.get(METADATA_KEY, {}).get(STRIP_FLAG) is True, path.name


def test_jupyter_saves_them_with_their_cells_only(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_CONFIG_PATH", str(CONFIG_PATH))
    other = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    with running_jupyterlab(tmp_path) as lab:
        headers = {"Authorization": f"token {lab.token}"}
        for name, notebook in [*((p.name, cells_only(p)) for p in NOTEBOOKS),
                               ("elsewhere.ipynb", other)]:
            response = httpx.put(f"{lab.url}api/contents/{name}", headers=headers, timeout=60,
                                 json={"type": "notebook", "format": "json",
                                       "content": _with_a_run(notebook)})
            assert response.status_code in (200, 201), response.text
        for path in NOTEBOOKS:
            saved = nbformat.read(lab.root / path.name, as_version=4)
            assert saved.cells == cells_only(path).cells, f"{path.name} kept outputs"
            assert "widgets" not in saved.metadata
            assert SIGN_IN not in (lab.root / path.name).read_text()
        kept = nbformat.read(lab.root / "elsewhere.ipynb", as_version=4)
        assert kept.cells[0].outputs and "widgets" in kept.metadata, "another notebook changed"


def test_the_readme_starts_jupyterlab_with_this_configuration() -> None:
    assert "JUPYTER_CONFIG_PATH=jupyter-config jupyter lab" in (REPO / "README.md").read_text()
