"""The promise "restore from a widget button", proven by a real browser clicking it.

JupyterLab runs a notebook on the local backend: a file is written, checkpointed and
changed, a service streams into a log panel, and the checkpoint browser is shown. The
browser then clicks Restore on the earlier checkpoint, confirms, waits for the progress
bar to turn green, and the file's content is read back through the Sprites API. It also
clicks the log panel's Stop. Screenshots of the three widgets (the README's) land in
test-artifacts/; they are taken only on a sandboxed local server, whose sprites mount the
checkpoint views that the confirmation's "what it would undo" reads.
"""

from __future__ import annotations

import httpx
import nbformat
from playwright.sync_api import Locator, Page, expect

from sprites_jupyter.local.storage.home import read_server_file, resolve_token
from tests.browser.lab import ARTIFACTS, JupyterLab, open_notebook, run_all_cells

SPRITE = "browser-demo"
CELLS = [
    "%load_ext sprites_jupyter",
    f"%sprite use {SPRITE} --create",
    "%%sprite_exec\necho first > result.txt",
    '%sprite checkpoint -m "first version"',
    "%%sprite_exec\necho second > result.txt",
    "%sprite service create ticker --duration 1 -- "
    "bash -c 'while true; do echo tick; sleep 0.2; done'",
    "%sprite logs ticker --follow",
    "%sprite browse",
]
CHECKPOINT_CELL, LOGS_CELL, BROWSER_CELL = 3, 6, 7
WIDGET_TIMEOUT_MS = 30_000


def _write_notebook(lab: JupyterLab) -> str:
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(source) for source in CELLS],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}},
    )
    nbformat.write(notebook, lab.root / "restore.ipynb")
    return "restore.ipynb"


def _output(page: Page, cell: int) -> Locator:
    return page.locator(".jp-Notebook .jp-CodeCell").nth(cell).locator(".jp-OutputArea")


def _isolation(lab: JupyterLab) -> str:
    """How the local server the kernel started isolates sprites (its isolation header)."""
    record = read_server_file(lab.sprites_home)
    assert record, "the kernel did not start a local server in the private home"
    response = httpx.head(f"{record['url']}/v1/sprites",
                          headers={"Authorization": f"Bearer {resolve_token(lab.sprites_home)}"})
    return response.headers.get("sprite-local-isolation", "")


def _read_sprite_file(lab: JupyterLab, path: str) -> str:
    """Read a file through the local server's filesystem API, as any client would."""
    record = read_server_file(lab.sprites_home)
    assert record, "the kernel did not start a local server in the private home"
    token = resolve_token(lab.sprites_home)
    response = httpx.get(f"{record['url']}/v1/sprites/{SPRITE}/fs/read",
                         params={"path": path},
                         headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    return response.text


def test_restore_button_brings_the_file_back_and_stop_ends_the_log(
        jupyterlab: JupyterLab, page: Page) -> None:
    open_notebook(page, jupyterlab, _write_notebook(jupyterlab))
    run_all_cells(page, len(CELLS))
    assert _read_sprite_file(jupyterlab, "/home/sprite/result.txt") == "second\n"
    sandboxed = _isolation(jupyterlab) == "sandbox"

    # A bar that finished in its cell is left as static HTML, its widgets closed.
    progress = _output(page, CHECKPOINT_CELL).locator(".sprites-progress-done")
    expect(progress).to_contain_text("v1 created", timeout=WIDGET_TIMEOUT_MS)
    expect(_output(page, CHECKPOINT_CELL).locator(".widget-hprogress")).to_have_count(0)
    if sandboxed:
        progress.screenshot(path=ARTIFACTS / "progress.png")

    log_panel = _output(page, LOGS_CELL).locator(".widget-vbox").first
    expect(log_panel.locator("pre")).to_contain_text("tick", timeout=WIDGET_TIMEOUT_MS)
    if sandboxed:
        log_panel.screenshot(path=ARTIFACTS / "log-panel.png")
    stop = log_panel.get_by_role("button", name="Stop")
    stop.click()
    expect(stop).to_be_hidden(timeout=WIDGET_TIMEOUT_MS)
    expect(log_panel).not_to_contain_text("running", timeout=WIDGET_TIMEOUT_MS)

    browser = _output(page, BROWSER_CELL).locator(".widget-vbox").first
    row = browser.locator(".widget-hbox").filter(has_text="first version")
    restore = row.get_by_role("button", name="Restore")
    checkpoint_id = str(restore.get_attribute("title")).removeprefix("Restore ")
    restore.click()
    confirm = browser.get_by_role("button", name=f"Restore {checkpoint_id}", exact=True)
    expect(confirm).to_be_visible()
    if sandboxed:
        expect(browser).to_contain_text("will undo 1 change: 1 modified",
                                        timeout=WIDGET_TIMEOUT_MS)
        for button in browser.get_by_role("button").all():
            if button.is_visible():
                assert button.evaluate("b => b.scrollWidth <= b.clientWidth"), \
                    f"button {button.inner_text()!r} is clipped"
        browser.screenshot(path=ARTIFACTS / "checkpoint-browser.png")
    confirm.click()
    expect(browser.locator(".progress-bar-success")).to_be_visible(timeout=WIDGET_TIMEOUT_MS)
    expect(browser).to_contain_text("Undo by restoring", timeout=WIDGET_TIMEOUT_MS)
    assert _read_sprite_file(jupyterlab, "/home/sprite/result.txt") == "first\n"
