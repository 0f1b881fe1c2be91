"""Fixtures of the local server's tests: a small disk, and a server run as an ordinary
user the test makes (``user``, its ``home``, the ``local`` server)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprites_jupyter.local.testing import LocalServer, ServerDidNotStart, start_server
from tests.local.other_user import USER, as_user
from tests.local.sprite_procs import sandboxed

SMALL_DISK_MB = 24


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs on a directory of this test's own (skipped where mounting is refused)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK_MB}m,mode=0700",
                           "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): "
                    f"{done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    """The ordinary user a server runs as (made, and removed after, when missing)."""
    if os.geteuid() != 0:
        pytest.skip("making a user needs root; run as root (as CI does) to test an "
                    "unprivileged server")
    if shutil.which("useradd") is None or shutil.which("unshare") is None:
        pytest.skip("needs useradd and unshare (util-linux) to run a server as another user")
    made = False
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/bin/sh", USER],
                       check=True)
        made = True
        entry = pwd.getpwnam(USER)
    yield entry
    if made:
        subprocess.run(["userdel", USER], check=False)


@pytest.fixture(scope="module")
def home(user: pwd.struct_passwd) -> Iterator[Path]:
    """A directory of the module's own that ``user`` owns: servers' homes, mount points."""
    directory = Path(tempfile.mkdtemp(prefix="sprites-unprivileged-", dir="/tmp"))
    os.chown(directory, user.pw_uid, user.pw_gid)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def local(user: pwd.struct_passwd, home: Path) -> Iterator[LocalServer]:
    """A sandboxing server run as ``user`` (skipped where the host gives it no sandbox)."""
    try:
        server = start_server(home / "state", prefix=as_user(user, home))
    except ServerDidNotStart as exc:
        pytest.fail(f"a server as {USER} did not start: {exc}")
    with server.http() as http:
        if not sandboxed(http):
            reason = http.head("/v1/sprites").headers.get("sprite-local-isolation")
            server.stop()
            pytest.skip(f"as an ordinary user this host gives no sandbox ({reason})")
    yield server
    server.stop()
