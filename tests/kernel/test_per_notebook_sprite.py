"""The per-notebook kernelspec ("Python 3 (sprite)", no sprite of its own): the sprite
comes from the notebook's metadata when Jupyter's server names the notebook
(``JPY_SESSION_NAME``), else from ``$SPRITES_KERNEL_SPRITE``; nbclient runs a notebook
on it top to bottom."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import LocalServer
from tests.kernel.conftest import START_WAIT, RunningKernel, install_spec, use_server


@pytest.fixture(scope="module")
def per_notebook_spec(kernel_env: Path) -> str:
    install_spec(kernel_env, "--name", "per-notebook")
    return "per-notebook"


def test_the_notebooks_metadata_names_the_sprite(server: LocalServer, sandboxed_sprite: str,
                                                 per_notebook_spec: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    notebook = nbformat.v4.new_notebook(metadata={"sprites": {"sprite": sandboxed_sprite}})
    path = tmp_path / "analysis.ipynb"
    nbformat.write(notebook, path)
    use_server(monkeypatch, server)
    monkeypatch.setenv("SPRITES_KERNEL_SPRITE", "not-this-one")
    kernel = RunningKernel(per_notebook_spec, cwd=str(tmp_path),
                           env={"JPY_SESSION_NAME": str(path)})
    try:
        assert kernel.provisioner.sprite_name == sandboxed_sprite
        assert kernel.value("import socket; socket.gethostname()") == repr(sandboxed_sprite)
    finally:
        kernel.stop()


def test_nbclient_runs_a_notebook_on_the_sprite_the_environment_names(
        server: LocalServer, sandboxed_sprite: str, per_notebook_spec: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    use_server(monkeypatch, server)
    monkeypatch.setenv("SPRITES_KERNEL_SPRITE", sandboxed_sprite)
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import socket\nhost = socket.gethostname()"),
        nbformat.v4.new_code_cell("print(host, 6 * 7)"),
    ])
    NotebookClient(notebook, kernel_name=per_notebook_spec, timeout=120,
                   startup_timeout=int(START_WAIT)).execute()
    assert notebook.cells[1].outputs[0]["text"] == f"{sandboxed_sprite} 42\n"
