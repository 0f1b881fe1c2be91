"""A sprite kernel picked from JupyterLab's launcher in Chromium runs a cell in the sprite.

The kernelspec is installed by our CLI into a temp prefix JupyterLab finds through
``JUPYTER_PATH``; the kernels' local backend is the run's own, where the sprite is made
first with every outbound connection denied (so ipykernel comes from this machine's
wheels, and nothing is installed into the sprite from the network).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from sprites_jupyter.backend import client_from_env
from tests.browser.lab import ARTIFACTS, running_jupyterlab
from tests.kernel.conftest import install_spec, register_provisioner

START_MS = 300_000  # the first start installs ipykernel into the sprite
CELL_MS = 60_000


def test_kernel_picked_in_the_launcher_runs_a_cell_in_the_sprite(
        tmp_path: Path, page: Page, monkeypatch: pytest.MonkeyPatch) -> None:
    sprite = f"lab-{uuid.uuid4().hex[:6]}"
    (tmp_path / "entry-points").mkdir()
    entry_points = register_provisioner(tmp_path / "entry-points")
    for name in ("SPRITES_TOKEN", "SPRITE_TOKEN", "SPRITES_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SPRITES_LOCAL_HOME", str(tmp_path / "lab" / "sprites-home"))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "kernels" / "share" / "jupyter"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        filter(None, [str(entry_points), os.environ.get("PYTHONPATH")])))
    (tmp_path / "lab").mkdir()
    install_spec(tmp_path / "kernels", "--sprite", sprite)
    display_name = f"Python 3 (sprite {sprite})"

    with running_jupyterlab(tmp_path / "lab") as lab, client_from_env() as client:
        client.create_sprite(sprite)
        client.sprite(sprite).set_network_policy([{"domain": "*", "action": "deny"}])
        page.goto(f"{lab.url}lab?token={lab.token}")
        page.locator(".jp-LauncherCard", has_text=display_name).first.click()
        page.get_by_text(f"{display_name} | Idle").wait_for(timeout=START_MS)
        editor = page.locator(".jp-Cell .jp-InputArea-editor .cm-content").first
        editor.click()
        editor.type("import socket, os; socket.gethostname(), os.getcwd()")
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-OutputArea-output").first
        expect(output).to_have_text(f"('{sprite}', '/home/sprite')", timeout=CELL_MS)
        page.screenshot(path=ARTIFACTS / "sprite-kernel.png")
