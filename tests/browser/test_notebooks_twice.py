"""Restart & Run All, twice, for every committed notebook, in a real JupyterLab.

A new user runs a notebook, changes something, and runs it all again: both runs must
get to the last cell (JupyterLab's Run All stops at the first failing cell, which then
leaves every later cell without an execution count). JupyterLab gets the notebook's cells
only: execution counts saved by an earlier run (a user's autosave) would read as a run
already finished, and the restart below would then cut the first run short.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page

from tests.browser.lab import KERNEL_IDLE, JupyterLab, run_all_cells
from tests.notebooks.cells import cells_only

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
RUN_TIMEOUT_MS = 240_000


def _code_cells(path: Path) -> int:
    return sum(cell.cell_type == "code" for cell in nbformat.read(path, as_version=4).cells)


def _open_alone(page: Page, lab: JupyterLab, notebook: str) -> None:
    """Open ``notebook`` in a workspace of its own (no other notebook's cells on the page)
    and wait until its kernel is idle."""
    workspace = notebook.removesuffix(".ipynb")
    page.goto(f"{lab.url}lab/workspaces/{workspace}/tree/{notebook}?token={lab.token}")
    page.get_by_text(KERNEL_IDLE).wait_for(timeout=60_000)


def _failed_cells(page: Page) -> list[str]:
    """The first lines of the error outputs on the page (a UsageError, a traceback)."""
    errors = page.locator(".jp-OutputArea-output[data-mime-type="
                          "'application/vnd.jupyter.stderr']")
    return [text.splitlines()[0] for text in errors.all_inner_texts()
            if "Error" in text.splitlines()[0]]


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.name)
def test_restart_and_run_all_twice(jupyterlab: JupyterLab, page: Page, path: Path) -> None:
    nbformat.write(cells_only(path), jupyterlab.root / path.name)
    cells = _code_cells(path)
    _open_alone(page, jupyterlab, path.name)
    run_all_cells(page, cells, timeout_ms=RUN_TIMEOUT_MS)
    assert not _failed_cells(page)

    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    page.locator('li[data-command="runmenu:restart-and-run-all"]').click()
    page.get_by_role("button", name="Confirm Kernel Restart").click()
    page.wait_for_function(
        """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                   .some(p => !/\\[\\d+\\]/.test(p.textContent))""", timeout=60_000)
    page.wait_for_function(
        """(cells) => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length === cells && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", arg=cells, timeout=RUN_TIMEOUT_MS)
    assert not _failed_cells(page)
