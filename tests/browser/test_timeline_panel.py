"""``%sprite panel`` in a real JupyterLab and Chromium: the timeline opens in JupyterLab's
right side bar (a sidecar tab, not the cell's output), lists the notebook's checkpoints
newest first with the size of each one's change, and a click on a cell's Undo to here
changes the sprite; a cell run afterwards shows up in the panel by itself. The page's
screenshot (the README's) lands in test-artifacts/timeline-panel.png.
"""

from __future__ import annotations

import nbformat
from playwright.sync_api import Locator, Page, expect

from tests.browser.lab import ARTIFACTS, JupyterLab, open_notebook, read_sprite_file, run_all_cells

SPRITE = "browser-timeline"
CELLS = [
    "%load_ext sprites_jupyter",
    f"%sprite use {SPRITE} --create",
    '%sprite checkpoint -m "clean start"',
    "%sprite service create tick -- bash -c 'while true; do sleep 1; done'",
    "%sprite undo on",
    "%%sprite_exec\necho 'lr=0.1' > params.txt",
    "%%sprite_exec\necho 'lr=0.01' >> params.txt",
    "%sprite panel",
]
PANEL_CELL = 7
WIDGET_TIMEOUT_MS = 60_000


def _write_notebook(lab: JupyterLab) -> str:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}},
    )
    nbformat.write(notebook, lab.root / "timeline.ipynb")
    return "timeline.ipynb"


def _rows(panel: Locator) -> Locator:
    return panel.locator(".sprites-checkpoint-row")


def _run_new_cell(page: Page, after: int, source: str) -> None:
    """Add a cell below cell ``after`` and run it, as a user types it."""
    page.locator(".jp-Notebook .jp-CodeCell").nth(after).locator(".jp-InputArea-prompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type(source)
    page.keyboard.press("Shift+Enter")


def test_the_timeline_opens_beside_the_notebook_and_undo_to_here_changes_the_sprite(
        jupyterlab: JupyterLab, page: Page) -> None:
    open_notebook(page, jupyterlab, _write_notebook(jupyterlab))
    run_all_cells(page, len(CELLS))
    assert read_sprite_file(jupyterlab, SPRITE, "/home/sprite/params.txt") == "lr=0.1\nlr=0.01\n"

    # In JupyterLab's right side bar, with a tab titled after the sprite; not in the cell.
    panel = page.locator("#jp-right-stack .jupyterlab-sidecar")
    expect(panel).to_be_visible(timeout=WIDGET_TIMEOUT_MS)
    expect(page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab",
                        has_text=f"Sprite {SPRITE}")).to_be_visible()
    notebook_output = page.locator(".jp-Notebook .jp-CodeCell").nth(PANEL_CELL)
    expect(notebook_output.locator(".jp-OutputArea .widget-vbox")).to_have_count(0)

    # Newest first: the two cells' checkpoints, then the user's own and the sprite's v0.
    rows = _rows(panel)
    expect(rows).to_have_count(4, timeout=WIDGET_TIMEOUT_MS)
    expect(rows.nth(0)).to_contain_text(">> params.txt")
    expect(rows.nth(0)).to_contain_text("+7 B")  # taken before that cell: the first's change
    expect(rows.nth(1)).to_contain_text("> params.txt")
    expect(rows.nth(2)).to_contain_text("clean start")
    expect(rows.nth(2).get_by_role("button", name="Undo to here")).to_have_count(0)
    expect(panel).to_contain_text("tick running")
    page.keyboard.press("Control+b")  # the file browser folded away, for the README's picture
    page.screenshot(path=ARTIFACTS / "timeline-panel.png")

    # Undo to here on the first cell takes both cells back: params.txt never existed.
    rows.nth(1).get_by_role("button", name="Undo to here").click()
    expect(panel).to_contain_text("Undid 2 cells", timeout=WIDGET_TIMEOUT_MS)
    probe = read_sprite_file(jupyterlab, SPRITE, "/home/sprite/params.txt", missing_ok=True)
    assert probe is None, f"params.txt is still there after the undo: {probe!r}"

    # A cell run now appears at the top of the panel without touching it.
    _run_new_cell(page, PANEL_CELL, "%%sprite_exec\necho 'lr=0.5' > params.txt")
    expect(rows.first).to_contain_text("lr=0.5", timeout=WIDGET_TIMEOUT_MS)
    assert read_sprite_file(jupyterlab, SPRITE, "/home/sprite/params.txt") == "lr=0.5\n"
