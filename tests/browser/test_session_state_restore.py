"""A restore from the browser widget brings the Python session's variables back, proven in
a real JupyterLab: the confirmation names the variables it would change, and the next
``%%sprite_python`` cell resumes them. Screenshots land in test-artifacts/."""

from __future__ import annotations

import nbformat
from playwright.sync_api import Locator, Page, expect

from tests.browser.lab import ARTIFACTS, JupyterLab, open_notebook, run_all_cells

SPRITE = "browser-state"
CELLS = [
    "%load_ext sprites_jupyter",
    f"%sprite use {SPRITE} --create",
    "%%sprite_python\nlosses = {0.1: 0.0099, 0.01: 0.0909}\nbest = min(losses, key=losses.get)",
    '%sprite checkpoint -m "analysis done"',
    "%%sprite_python\nlosses.clear()\nbest = None\nscratch = list(range(1000))",
    "%sprite browse",
]
BROWSER_CELL = 5
WIDGET_TIMEOUT_MS = 60_000


def _write_notebook(lab: JupyterLab) -> str:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}},
    )
    nbformat.write(notebook, lab.root / "state.ipynb")
    return "state.ipynb"


def _output(page: Page, cell: int) -> Locator:
    return page.locator(".jp-Notebook .jp-CodeCell").nth(cell).locator(".jp-OutputArea")


def test_browser_restore_brings_the_variables_back(jupyterlab: JupyterLab, page: Page) -> None:
    open_notebook(page, jupyterlab, _write_notebook(jupyterlab))
    run_all_cells(page, len(CELLS))
    browser = _output(page, BROWSER_CELL).locator(".widget-vbox").first
    row = browser.locator(".widget-hbox").filter(has_text="analysis done")
    restore = row.get_by_role("button", name="Restore")
    checkpoint_id = str(restore.get_attribute("title")).removeprefix("Restore ")
    restore.click()
    expect(browser).to_contain_text("Variables: 2 go back: best (NoneType), losses (dict); "
                                    "1 are dropped: scratch (list).",
                                    timeout=WIDGET_TIMEOUT_MS)
    expect(browser).to_contain_text("Exec sessions that end: the Python session")
    browser.screenshot(path=ARTIFACTS / "restore-variables.png")
    browser.get_by_role("button", name=f"Restore {checkpoint_id}", exact=True).click()
    expect(browser).to_contain_text("Undo by restoring", timeout=WIDGET_TIMEOUT_MS)
    page.locator(".jp-Notebook .jp-CodeCell").nth(BROWSER_CELL).locator(
        ".jp-InputArea-prompt").click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.type("%%sprite_python\nbest, losses")
    page.keyboard.press("Shift+Enter")
    resumed = _output(page, BROWSER_CELL + 1)
    expect(resumed).to_contain_text(f"restored 2 variables from {checkpoint_id}",
                                    timeout=WIDGET_TIMEOUT_MS)
    expect(resumed).to_contain_text("(0.1, {0.01: 0.0909, 0.1: 0.0099})")
    resumed.screenshot(path=ARTIFACTS / "restored-variables.png")
