"""Sandboxed sprites when the server runs as an ordinary user (tests run as root in CI).

The test makes its own user (``useradd``) and runs a server as that user: the fixtures
``user``, ``home`` and ``local`` of this folder's conftest, the prefix of ``other_user``.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.magic_commands.diff import checkpoint_changes
from tests.conftest import LocalServer, start_server
from tests.local.other_user import as_user
from tests.local.sandbox_checks import checkpoint, eventually, restore, sh, start_service
from tests.local.sprite_procs import alive, host_pid, sandboxed


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
    server = start_server(home / "killed", prefix=as_user(user, home))
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
