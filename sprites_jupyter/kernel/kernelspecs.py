"""Kernelspecs that name the sprite provisioner: write, list and remove them.

Jupyter's own :class:`~jupyter_client.kernelspec.KernelSpecManager` does the placing
(``--user``, ``--sys-prefix``, ``--prefix``), so the specs land where every Jupyter
front end (JupyterLab, Notebook 7, VS Code) looks for them.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

PROVISIONER_NAME = "sprites-provisioner"
DEFAULT_PYTHON = "python3"
_SPEC_NAME = re.compile(r"^[a-z0-9._-]+$", re.IGNORECASE)


class KernelSpecError(Exception):
    """A kernelspec cannot be written or removed; the message says what to do."""


@dataclass(frozen=True)
class SpriteKernelSpec:
    """One installed kernelspec that runs its kernel on a sprite."""

    name: str
    display_name: str
    sprite: str  # "" when chosen per notebook
    python: str
    resource_dir: str


def default_spec_name(sprite: str) -> str:
    return f"sprite-{sprite}" if sprite else "sprite"


def spec_document(sprite: str, python: str, display_name: str) -> dict[str, object]:
    """The ``kernel.json`` of a sprite kernel. The provisioner builds the command it runs
    in the sprite from its config; ``argv`` only answers a launcher that ignores
    provisioners, with a refusal that says what to use instead."""
    return {
        "argv": [sys.executable, "-m", "sprites_jupyter.kernel.unprovisioned", "-f",
                 "{connection_file}"],
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "signal",
        "metadata": {
            "debugger": True,
            "kernel_provisioner": {
                "provisioner_name": PROVISIONER_NAME,
                "config": {"sprite": sprite, "python": python},
            },
        },
    }


def install(*, sprite: str = "", python: str = DEFAULT_PYTHON, name: str | None = None,
            display_name: str | None = None, user: bool = False,
            prefix: str | None = None) -> str:
    """Write the kernelspec and return the folder Jupyter installed it into."""
    name = name or default_spec_name(sprite)
    if not _SPEC_NAME.match(name):
        raise KernelSpecError(f"invalid kernel name {name!r}: use letters, digits, '.', '_' "
                              "and '-' only")
    if not python.strip():
        raise KernelSpecError("--python is empty: give the interpreter's path in the sprite, "
                              f"e.g. {DEFAULT_PYTHON}")
    if display_name is None:
        display_name = f"Python 3 (sprite {sprite})" if sprite else "Python 3 (sprite)"
    document = spec_document(sprite, python, display_name)
    with tempfile.TemporaryDirectory(prefix="sprites-kernelspec-") as folder:
        (Path(folder) / "kernel.json").write_text(json.dumps(document, indent=1) + "\n")
        try:
            return KernelSpecManager().install_kernel_spec(folder, name, user=user,
                                                           prefix=prefix)
        except OSError as error:
            raise KernelSpecError(f"cannot install kernel {name!r}: {error.strerror or error} "
                                  "(try --user, or --prefix DIR)") from None


def installed() -> list[SpriteKernelSpec]:
    """Every kernelspec Jupyter finds that names the sprite provisioner (read from its
    ``kernel.json``, so a spec shows even where the provisioner is not installed)."""
    specs = []
    for name, folder in sorted(KernelSpecManager().find_kernel_specs().items()):
        try:
            spec = json.loads((Path(folder) / "kernel.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(spec, dict):
            continue
        provisioner = (spec.get("metadata") or {}).get("kernel_provisioner") or {}
        if provisioner.get("provisioner_name") != PROVISIONER_NAME:
            continue
        config = provisioner.get("config") or {}
        specs.append(SpriteKernelSpec(name=name, display_name=spec.get("display_name", name),
                                      sprite=str(config.get("sprite") or ""),
                                      python=str(config.get("python") or DEFAULT_PYTHON),
                                      resource_dir=folder))
    return specs


def remove(name: str) -> str:
    """Remove a sprite kernelspec (never another kind); the folder it was in."""
    if name not in {spec.name for spec in installed()}:
        raise KernelSpecError(f"no sprite kernel named {name!r}: see `sprites-jupyter kernel "
                              "list`")
    try:
        return KernelSpecManager().remove_kernel_spec(name)
    except NoSuchKernel:
        raise KernelSpecError(f"no kernel named {name!r}") from None
    except OSError as error:
        raise KernelSpecError(f"cannot remove kernel {name!r}: {error.strerror or error}") \
            from None
