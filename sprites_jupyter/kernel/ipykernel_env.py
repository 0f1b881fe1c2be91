"""ipykernel (and ipywidgets) for a sprite whose interpreter lacks it: a venv in the sprite.

Installed from the sprite's package index when its network policy lets pip reach it,
otherwise from wheels this machine downloads for the sprite's Python and platform
(cached), copied in through the filesystem API and installed with ``--no-index``: so
it works offline in the sprite and behind a deny-all policy.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from platformdirs import user_cache_dir

from ..client import Sprite, SpritesError
from .errors import KernelStartError

ENV_DIR = "/home/sprite/.sprites-jupyter/ipykernel-env"
ENV_PYTHON = f"{ENV_DIR}/bin/python"
WHEELS_IN_SPRITE = "/tmp/sprites-jupyter/wheels"
# ipywidgets too: the kernel side of widgets, which a front end expects of a Python kernel
PACKAGES = ("ipykernel", "ipywidgets")
INSTALL_WAIT = 600.0
INDEX_WAIT = 180.0
_NOT_FOUND = 127
_PROBE = ("import sys, sysconfig, platform; "
          "print(sys.version_info[0], sys.version_info[1], sysconfig.get_platform(), "
          "*platform.libc_ver())")
_HOW_TO_FIX = ("install ipykernel in the sprite (`pip install ipykernel`), or give "
               "`sprites-jupyter kernel install --python` an interpreter that has it")


@dataclass(frozen=True)
class SpritePython:
    """What ``pip download`` needs to fetch wheels that run on the sprite's interpreter."""

    major: int
    minor: int
    platform: str  # sysconfig's, e.g. linux-x86_64
    libc: str
    libc_version: str

    @property
    def tag(self) -> str:
        return (f"cp{self.major}{self.minor}-{self.platform}-{self.libc}{self.libc_version}-"
                + "-".join(PACKAGES))

    def platform_tags(self) -> list[str]:
        arch = self.platform.removeprefix("linux-").replace("-", "_")
        if self.libc == "glibc":
            newest = int(self.libc_version.split(".")[1]) if "." in self.libc_version else 17
            return [f"manylinux2014_{arch}",
                    *(f"manylinux_2_{minor}_{arch}" for minor in range(17, newest + 1))]
        return [f"musllinux_1_{minor}_{arch}" for minor in (1, 2)]


def kernel_python(sprite: Sprite, python: str, log: logging.Logger) -> str:
    """An interpreter in the sprite that can import ipykernel: ``python`` itself, else
    the venv's, installing it first when needed."""
    if _imports_ipykernel(sprite, python):
        return python
    if _imports_ipykernel(sprite, ENV_PYTHON):
        log.info("Sprite %s: using ipykernel from %s", sprite.name, ENV_DIR)
        return ENV_PYTHON
    log.info("Sprite %s: %s has no ipykernel; installing it into %s", sprite.name, python,
             ENV_DIR)
    _run(sprite, [python, "-m", "venv", ENV_DIR], f"create a venv with {python}")
    if _install_from_index(sprite):
        log.info("Sprite %s: ipykernel installed from the sprite's package index", sprite.name)
    else:
        log.info("Sprite %s: the package index is not reachable from the sprite; copying "
                 "wheels from this machine", sprite.name)
        _install_from_wheels(sprite, _probe(sprite, python), log)
    if not _imports_ipykernel(sprite, ENV_PYTHON):
        raise KernelStartError(f"ipykernel was installed into {ENV_DIR} in sprite "
                               f"{sprite.name} but does not import: {_HOW_TO_FIX}")
    return ENV_PYTHON


def _imports_ipykernel(sprite: Sprite, python: str) -> bool:
    result = sprite.run(python, "-c", "import ipykernel", timeout=INDEX_WAIT)
    if result.exit_code == _NOT_FOUND and python != ENV_PYTHON:
        raise KernelStartError(f"sprite {sprite.name} has no {python}: give "
                               "`sprites-jupyter kernel install --python` its interpreter")
    return result.ok


def _run(sprite: Sprite, argv: list[str], what: str, timeout: float = INSTALL_WAIT) -> None:
    try:
        result = sprite.run(*argv, timeout=timeout)
    except SpritesError as error:
        raise KernelStartError(f"cannot {what} in sprite {sprite.name}: {error}") from None
    if not result.ok:
        lines = (result.stderr or result.stdout).strip().splitlines()
        said = lines[-1] if lines else f"exit code {result.exit_code}"
        raise KernelStartError(f"cannot {what} in sprite {sprite.name}: {said}; {_HOW_TO_FIX}")


def _pip(*args: str) -> list[str]:
    return [ENV_PYTHON, "-m", "pip", "--disable-pip-version-check", "--no-input", *args]


def _install_from_index(sprite: Sprite) -> bool:
    try:
        result = sprite.run(*_pip("install", "--retries", "0", "--timeout", "15", *PACKAGES),
                            timeout=INDEX_WAIT)
    except SpritesError:
        return False
    return result.ok


def _probe(sprite: Sprite, python: str) -> SpritePython:
    result = sprite.run(python, "-c", _PROBE, timeout=INDEX_WAIT)
    fields = result.stdout.split()
    if not result.ok or len(fields) < 3:
        raise KernelStartError(f"cannot tell which Python {python} is in sprite "
                               f"{sprite.name}; {_HOW_TO_FIX}")
    libc, version = (fields[3], fields[4]) if len(fields) >= 5 else ("musl", "")
    return SpritePython(int(fields[0]), int(fields[1]), fields[2], libc, version)


def wheel_folder(target: SpritePython) -> Path:
    """This machine's cache of ipykernel wheels for ``target``, downloaded when missing."""
    folder = Path(user_cache_dir("sprites-jupyter")) / "wheels" / target.tag
    done = folder / ".complete"
    if done.exists():
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    platforms = [arg for tag in target.platform_tags() for arg in ("--platform", tag)]
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--no-input",
         "--only-binary=:all:", "--implementation", "cp",
         "--python-version", f"{target.major}.{target.minor}", *platforms,
         "--dest", str(partial), *PACKAGES],
        capture_output=True, text=True, check=False)
    if download.returncode != 0:
        lines = download.stderr.strip().splitlines()
        raise KernelStartError(
            f"the sprite cannot reach a package index and `pip download {' '.join(PACKAGES)}` "
            f"for Python {target.major}.{target.minor} failed here too"
            + (f" ({lines[-1]})" if lines else "") + f"; {_HOW_TO_FIX}")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    done.touch()
    return folder


def _install_from_wheels(sprite: Sprite, target: SpritePython, log: logging.Logger) -> None:
    folder = wheel_folder(target)
    wheels = sorted(folder.glob("*.whl"))
    log.info("Sprite %s: copying %d wheels (%.1f MB) in", sprite.name, len(wheels),
             sum(wheel.stat().st_size for wheel in wheels) / 1e6)
    try:
        for wheel in wheels:
            sprite.write_file(f"{WHEELS_IN_SPRITE}/{wheel.name}", wheel.read_bytes())
    except SpritesError as error:
        raise KernelStartError(f"cannot copy wheels into sprite {sprite.name}: {error}") \
            from None
    log.info("Sprite %s: installing ipykernel from the copied wheels", sprite.name)
    _run(sprite, _pip("install", "--no-index", "--find-links", WHEELS_IN_SPRITE, *PACKAGES),
         "install ipykernel from the copied wheels")
    try:
        sprite.delete(WHEELS_IN_SPRITE, recursive=True)
    except SpritesError:
        log.info("Sprite %s: could not remove %s", sprite.name, WHEELS_IN_SPRITE)
