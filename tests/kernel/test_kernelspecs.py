"""``sprites-jupyter kernel install|list|remove`` as a user runs it, into a temp prefix
that Jupyter's own KernelSpecManager then finds; and the per-notebook sprite choice."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from sprites_jupyter.kernel.kernelspecs import PROVISIONER_NAME
from sprites_jupyter.kernel.sprite_choice import DEFAULT_SPRITE, SPRITE_ENV, choose_sprite
from tests.kernel.conftest import sprites_cli


@pytest.fixture
def jupyter_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"),
            "JUPYTER_DATA_DIR": str(tmp_path / "data")}


def test_install_writes_a_spec_that_jupyter_finds(tmp_path: Path, jupyter_env: dict[str, str],
                                                  provisioner_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(provisioner_path))
    done = sprites_cli("kernel", "install", "--sprite", "demo", "--python", "/opt/py/bin/python",
                       "--prefix", str(tmp_path), env=jupyter_env)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "share" / "jupyter" / "kernels" / "sprite-demo"
    assert str(folder) in done.stdout
    manager = KernelSpecManager(kernel_dirs=[str(folder.parent)])
    spec = manager.get_kernel_spec("sprite-demo")
    assert spec.display_name == "Python 3 (sprite demo)"
    assert spec.interrupt_mode == "signal"
    assert spec.metadata["kernel_provisioner"] == {
        "provisioner_name": PROVISIONER_NAME,
        "config": {"sprite": "demo", "python": "/opt/py/bin/python"}}


def test_a_launcher_without_provisioners_gets_a_refusal_not_a_local_kernel(
        tmp_path: Path, jupyter_env: dict[str, str]) -> None:
    assert sprites_cli("kernel", "install", "--sprite", "demo", "--prefix", str(tmp_path),
                       env=jupyter_env).returncode == 0
    spec = json.loads((tmp_path / "share" / "jupyter" / "kernels" / "sprite-demo" /
                       "kernel.json").read_text())
    argv = [arg.replace("{connection_file}", str(tmp_path / "kernel.json"))
            for arg in spec["argv"]]
    started = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    assert started.stderr.count("\n") == 1 and "Existing Jupyter Server" in started.stderr
    assert not (tmp_path / "kernel.json").exists()


def test_list_shows_sprite_kernels_only_and_remove_removes(tmp_path: Path,
                                                           jupyter_env: dict[str, str]) -> None:
    assert sprites_cli("kernel", "install", "--prefix", str(tmp_path),
                       env=jupyter_env).returncode == 0
    local = tmp_path / "share" / "jupyter" / "kernels" / "plain"
    local.mkdir(parents=True)
    (local / "kernel.json").write_text(json.dumps(
        {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Plain", "language": "python"}))
    listed = sprites_cli("kernel", "list", env=jupyter_env)
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sprite\tPython 3 (sprite)\t")
    assert "(per notebook)" in lines[0]

    refused = sprites_cli("kernel", "remove", "plain", env=jupyter_env)
    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1 and "kernel list" in refused.stderr
    assert (local / "kernel.json").exists()

    removed = sprites_cli("kernel", "remove", "sprite", env=jupyter_env)
    assert removed.returncode == 0, removed.stderr
    assert not (tmp_path / "share" / "jupyter" / "kernels" / "sprite").exists()
    assert "No sprite kernels" in sprites_cli("kernel", "list", env=jupyter_env).stdout


def test_a_bad_name_is_one_line_and_writes_nothing(tmp_path: Path,
                                                   jupyter_env: dict[str, str]) -> None:
    done = sprites_cli("kernel", "install", "--name", "no spaces/here", "--prefix",
                       str(tmp_path), env=jupyter_env)
    assert done.returncode == 1
    assert done.stderr.startswith("sprites-jupyter: invalid kernel name")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "share").exists()


def test_the_notebook_metadata_chooses_the_sprite(tmp_path: Path) -> None:
    notebook = tmp_path / "analysis.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {"sprites": {"sprite": "lab-7"}},
                                    "nbformat": 4, "nbformat_minor": 5}))
    assert choose_sprite({"JPY_SESSION_NAME": str(notebook)}, None) == "lab-7"
    assert choose_sprite({"JPY_SESSION_NAME": "analysis.ipynb"}, str(tmp_path)) == "lab-7"


def test_without_metadata_the_environment_then_the_default_chooses(tmp_path: Path) -> None:
    notebook = tmp_path / "plain.ipynb"
    notebook.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4,
                                    "nbformat_minor": 5}))
    env = {"JPY_SESSION_NAME": str(notebook)}
    assert choose_sprite({**env, SPRITE_ENV: "team-box"}, None) == "team-box"
    assert choose_sprite({"JPY_SESSION_NAME": str(tmp_path / "missing.ipynb")},
                         None) in (os.environ.get(SPRITE_ENV), DEFAULT_SPRITE)
