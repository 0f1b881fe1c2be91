"""Sprite kernels through Jupyter's own machinery: the kernelspec installed by our CLI into
a temp prefix (found through ``JUPYTER_PATH``, never in ``$HOME``), started by
``jupyter_client.KernelManager``, against a real local server."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_client import BlockingKernelClient, KernelManager

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.kernel.kernelspecs import PROVISIONER_NAME
from sprites_jupyter.local.testing import LocalServer

ENTRY_POINT = "sprites_jupyter.kernel.provisioner:SpriteProvisioner"
START_WAIT = 600.0
REPLY_WAIT = 60.0
SLOW_REQUEST = 300.0  # deleting a sprite with a venv in it, on a busy machine


def sprites_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``sprites-jupyter ARGS`` as a user runs it (as a module: the script may not be
    installed in a checkout)."""
    return subprocess.run([sys.executable, "-m", "sprites_jupyter.kernel", *args],
                          capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="session")
def provisioner_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return register_provisioner(tmp_path_factory.mktemp("entry-points"))


def register_provisioner(folder: Path) -> Path:
    """``folder``, made to register our provisioner's entry point as an install would (a
    ``.dist-info``) once on the path: this checkout's may be newer than the installed
    metadata."""
    info = folder / "sprites_jupyter_kernel_checkout-0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sprites-jupyter-kernel-"
                                   "checkout\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        f"[jupyter_client.kernel_provisioners]\n{PROVISIONER_NAME} = {ENTRY_POINT}\n")
    return folder


@pytest.fixture(scope="package")
def kernel_env(tmp_path_factory: pytest.TempPathFactory,
               provisioner_path: Path) -> Iterator[Path]:
    """Jupyter's paths (kernelspecs, runtime files) and the wheel cache in temp folders;
    the provisioner registered. Yields the prefix kernelspecs are installed under.
    Package-scoped (hence this package's ``__init__.py``): the rest of the suite runs
    with the environment as it was."""
    base = tmp_path_factory.mktemp("jupyter")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(base / "share" / "jupyter"))
        patch.setenv("JUPYTER_RUNTIME_DIR", str(base / "runtime"))
        patch.setenv("JUPYTER_DATA_DIR", str(base / "data"))
        patch.setenv("JUPYTER_CONFIG_DIR", str(base / "config"))
        patch.setenv("XDG_CACHE_HOME", str(base / "cache"))
        patch.setenv("IPYTHONDIR", str(base / "ipython"))
        patch.syspath_prepend(str(provisioner_path))
        patch.setenv("PYTHONPATH", os.pathsep.join(
            filter(None, [str(provisioner_path), os.environ.get("PYTHONPATH")])))
        yield base


def use_server(patch: pytest.MonkeyPatch, server: LocalServer) -> None:
    patch.setenv("SPRITES_API_URL", server.url)
    patch.setenv("SPRITES_TOKEN", server.token)
    patch.delenv("SPRITE_TOKEN", raising=False)


def install_spec(prefix: Path, *args: str) -> None:
    done = sprites_cli("kernel", "install", "--prefix", str(prefix), *args)
    assert done.returncode == 0, done.stderr


class RunningKernel:
    """A kernel started by ``KernelManager`` with a blocking client on its channels."""

    def __init__(self, spec: str, **start: Any) -> None:
        self.manager = KernelManager(kernel_name=spec)
        self.manager.start_kernel(**start)
        self.client: BlockingKernelClient = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=START_WAIT)

    @property
    def provisioner(self) -> Any:
        return self.manager.provisioner

    def run(self, code: str, *, allow_error: bool = False,
            timeout: float = REPLY_WAIT) -> dict[str, Any]:
        """Execute ``code``; its stdout, result text, errors (stderr too) and status."""
        stdout: list[str] = []
        results: list[str] = []
        errors: list[str] = []

        def collect(message: dict[str, Any]) -> None:
            content = message["content"]
            if message["msg_type"] == "stream" and content["name"] == "stdout":
                stdout.append(content["text"])
            elif message["msg_type"] == "stream":  # IPython shows a UsageError here
                errors.append(content["text"])
            elif message["msg_type"] == "execute_result":
                results.append(content["data"].get("text/plain", ""))
            elif message["msg_type"] == "error":
                errors.append(f"{content['ename']}: {content['evalue']}")

        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=collect)
        status = reply["content"]["status"]
        if not allow_error:
            assert status == "ok", reply["content"]
        return {"stdout": "".join(stdout), "result": "".join(results), "status": status,
                "error": "".join(errors)}

    def value(self, expression: str) -> str:
        return self.run(expression)["result"]

    def stop(self) -> None:
        self.client.stop_channels()
        if self.manager.has_kernel:
            self.manager.shutdown_kernel(now=False)


@pytest.fixture(scope="package")
def sandboxed_sprite(server: LocalServer, kernel_env: Path) -> Iterator[str]:
    """A sandboxed sprite with every outbound connection denied and a kernelspec for it
    (its python3 is the system's, which lacks ipykernel: the provisioner installs it)."""
    name = f"k-{uuid.uuid4().hex[:8]}"
    with SpritesClient(server.token, server.url, timeout=SLOW_REQUEST) as client:
        client.create_sprite(name)
        client.sprite(name).set_network_policy([{"domain": "*", "action": "deny"}])
        install_spec(kernel_env, "--sprite", name, "--name", "sandboxed")
        yield name
        client.delete_sprite(name)


@pytest.fixture
def sandboxed_kernel(server: LocalServer, sandboxed_sprite: str) -> Iterator[RunningKernel]:
    with pytest.MonkeyPatch.context() as patch:
        use_server(patch, server)
        kernel = RunningKernel("sandboxed")
        try:
            yield kernel
        finally:
            kernel.stop()
