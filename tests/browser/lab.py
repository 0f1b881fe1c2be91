"""Drive a real JupyterLab: start it in private directories, open notebooks, run cells.

Everything runs in private directories: JupyterLab's config, data, runtime, settings
and workspaces, and the local Sprites server's home, so a run never touches the user's
data. The kernels get no Sprites token, so the extension talks to the local backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Page

from sprites_jupyter.local.storage.home import read_server_file, resolve_token

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
KERNEL_IDLE = "Python 3 (ipykernel) | Idle"
LAB_SETTINGS = {
    # No news or update pop-ups over the page.
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
    # Keep every cell in the DOM, so all of them can be found and checked.
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


@dataclass
class JupyterLab:
    """A running JupyterLab server: where it serves, what it serves, and for whom."""

    url: str
    token: str
    root: Path
    sprites_home: Path

    def tree_url(self, notebook: str) -> str:
        """The notebook alone in a workspace of its own: the default workspace would
        reopen earlier tests' notebooks, whose idle kernels then answer for this one."""
        workspace = f"{Path(notebook).stem}-{secrets.token_hex(4)}"
        return f"{self.url}lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"


def _private_dirs(base: Path) -> dict[str, str]:
    settings = base / "lab-settings"
    for plugin, values in LAB_SETTINGS.items():
        path = settings / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    dirs = {
        "JUPYTER_CONFIG_DIR": base / "config",
        "JUPYTER_DATA_DIR": base / "data",
        "JUPYTER_RUNTIME_DIR": base / "runtime",
        "JUPYTERLAB_SETTINGS_DIR": settings,
        "JUPYTERLAB_WORKSPACES_DIR": base / "workspaces",
    }
    for path in dirs.values():
        path.mkdir(parents=True, exist_ok=True)
    return {name: str(path) for name, path in dirs.items()}


def _kernel_environment(base: Path, sprites_home: Path) -> dict[str, str]:
    """The server's environment, which its kernels inherit: local backend, widgets on."""
    env = {name: value for name, value in os.environ.items()
           if name not in {"SPRITES_TOKEN", "SPRITE_TOKEN", "SPRITES_API_URL",
                           "SPRITES_JUPYTER_NO_WIDGETS"}}
    env.update(_private_dirs(base))
    env["SPRITES_LOCAL_HOME"] = str(sprites_home)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_for_server_info(runtime: Path, process: subprocess.Popen[bytes]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}")
        for info_file in runtime.glob(f"jpserver-{process.pid}.json"):
            with contextlib.suppress(json.JSONDecodeError):
                return json.loads(info_file.read_text())
        time.sleep(0.2)
    raise RuntimeError("JupyterLab did not write its server info within 60 s")


def _wait_until_answering(url: str, token: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}api/status", params={"token": token}).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("JupyterLab did not answer /api/status within 60 s")


def _stop_local_sprites_server(home: Path) -> None:
    """Stop the local Sprites server the kernels started for this run, if one runs."""
    record = read_server_file(home)
    if record and isinstance(record.get("pid"), int):
        with contextlib.suppress(ProcessLookupError):
            os.kill(record["pid"], signal.SIGTERM)


def read_sprite_file(lab: JupyterLab, sprite: str, path: str, *,
                     missing_ok: bool = False) -> str | None:
    """A file of a sprite, read through the local server's filesystem API as any client
    would; ``None`` for a missing file when ``missing_ok``."""
    record = read_server_file(lab.sprites_home)
    assert record, "the kernel did not start a local server in the private home"
    response = httpx.get(f"{record['url']}/v1/sprites/{sprite}/fs/read",
                         params={"path": path},
                         headers={"Authorization": f"Bearer {resolve_token(lab.sprites_home)}"})
    if missing_ok and response.status_code == 404:
        return None
    response.raise_for_status()
    return response.text


def open_notebook(page: Page, lab: JupyterLab, notebook: str) -> None:
    """Open ``notebook`` and wait until its kernel really exists and is idle.

    The execution indicator reads idle before the kernel has started, and running cells
    then silently does nothing, so this waits for the kernel's name in the status bar.
    """
    page.goto(lab.tree_url(notebook))
    page.get_by_text(KERNEL_IDLE).wait_for(timeout=60_000)


def run_all_cells(page: Page, cells: int, timeout_ms: int = 90_000) -> None:
    """Run -> Run All Cells, then wait until every code cell shows an execution count."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator('li[data-command="runmenu:run-all"]').click()
    page.wait_for_function(
        """(cells) => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length === cells && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""",
        arg=cells, timeout=timeout_ms,
    )


@contextlib.contextmanager
def running_jupyterlab(base: Path) -> Iterator[JupyterLab]:
    """JupyterLab serving ``base/root`` on a free port; stopped (with its kernels and
    their local Sprites server) on the way out. Its log is ``base/jupyterlab.log``."""
    root = base / "root"
    root.mkdir()
    sprites_home = base / "sprites-home"
    token = secrets.token_hex(16)
    env = _kernel_environment(base, sprites_home)
    with (base / "jupyterlab.log").open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
             "--ServerApp.ip=127.0.0.1", "--ServerApp.port=0",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}"],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            info = _wait_for_server_info(Path(env["JUPYTER_RUNTIME_DIR"]), process)
            url = str(info["url"])
            _wait_until_answering(url, token)
            yield JupyterLab(url=url, token=token, root=root, sprites_home=sprites_home)
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            _stop_local_sprites_server(sprites_home)
