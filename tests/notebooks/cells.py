"""A notebook as its cells say, for tests that run notebooks."""

from __future__ import annotations

from pathlib import Path

import nbformat


def cells_only(path: Path) -> nbformat.NotebookNode:
    """The notebook as its cells say, without what a save kept of a run (outputs,
    execution counts, widget state, sign-in links in them): tests run a notebook from its
    content, as Restart & Run All does, never from a user's outputs."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    notebook.metadata.pop("widgets", None)
    return notebook
