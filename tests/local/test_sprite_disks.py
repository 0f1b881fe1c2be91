"""Each sprite's disk limit: a root server's sprite fills its own ext4 image and no more.

The canaries are files a sprite writes inside itself; the images live in the test's
own home, mounted only in the server's mount namespace. Every test checks that no loop
device stays attached to an image of its home.
"""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.local.testing import LocalServer, start_server
from tests.local.other_user import as_user
from tests.local.sandbox_checks import checkpoint, eventually, restore, sh
from tests.local.sprite_procs import sandboxed

LIMIT_MIB = 40


def _attached_images(state: Path) -> list[str]:
    """The backing files of loop devices that are images under ``state`` (a home)."""
    found = []
    for device in Path("/sys/block").glob("loop*"):
        try:
            backing = (device / "loop" / "backing_file").read_text().strip()
        except OSError:
            continue
        if backing.startswith(str(state)):
            found.append(backing)
    return found


def _limits(server: LocalServer) -> str:
    with server.http() as http:
        return http.head("/v1/sprites").headers.get("sprite-local-limits", "")


def _start(state: Path) -> LocalServer:
    return start_server(state, max_disk=f"{LIMIT_MIB}M")


@pytest.fixture(scope="module")
def disk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A root server whose sprites each get a disk of LIMIT_MIB."""
    if os.geteuid() != 0:
        pytest.skip("only a root server gives sprites a disk of their own (as in CI)")
    state = tmp_path_factory.mktemp("disk-home")
    server = _start(state)
    try:
        with server.http() as http:
            if not sandboxed(http):
                pytest.skip("this host gives no sandbox")
        if f"disk {LIMIT_MIB} MiB per sprite" not in _limits(server):
            pytest.skip(f"this host cannot give sprites a disk: {_limits(server)}")
        yield server
    finally:
        server.stop()
        eventually(lambda: not _attached_images(state), "the server's loop devices to go", 10)


@pytest.fixture
def sprites(disk_server: LocalServer) -> Iterator[tuple[httpx.Client, list[str]]]:
    """Two fresh sprites on the disk server, deleted afterwards."""
    names = [f"d-{uuid.uuid4().hex[:8]}" for _ in range(2)]
    with disk_server.http() as http:
        for name in names:
            assert http.post("/v1/sprites", json={"name": name}).status_code == 201
        try:
            yield http, names
        finally:
            for name in names:
                http.delete(f"/v1/sprites/{name}")


def _fill(server: LocalServer, name: str) -> None:
    """Write a canary inside the sprite until its disk is full; it must say ENOSPC."""
    code, out, err = sh(server, name, "cd /home/sprite && cat /dev/zero > canary; "
                                      "dd if=/dev/zero of=crumbs bs=1k 2>&1; sync; "
                                      "df --output=avail -k / | tail -1")
    assert code == 0 and "No space left on device" in err + out, (out, err)
    assert int(out.split()[-1]) < 64, out


def test_a_full_sprite_gets_enospc_inside_and_the_api_names_its_limit(
        disk_server: LocalServer, sprites: tuple[httpx.Client, list[str]]) -> None:
    http, (full, other) = sprites
    _fill(disk_server, full)
    _, out, err = sh(disk_server, full, "cd /home/sprite && dd if=/dev/zero of=more bs=4k "
                                        "count=1; echo $?; stat -c %s canary")
    assert "No space left on device" in err and out.split()[0] != "0", (out, err)
    assert int(out.split()[-1]) > (LIMIT_MIB - 2) * 1024 * 1024

    response = http.put(f"/v1/sprites/{full}/fs/write", params={"path": "/home/sprite/api"},
                        content=b"x" * 256 * 1024)
    assert response.status_code == 507, response.text
    message = response.json()["error"]
    assert message.startswith(f"sprite {full} is at its disk limit: ")
    assert f"used of {LIMIT_MIB} MiB" in message and "\n" not in message
    assert response.json()["code"] == "ENOSPC"
    assert sh(disk_server, full, "test -e /home/sprite/api; echo $?")[1] == "1\n"
    response = http.post(f"/v1/sprites/{full}/fs/copy",
                         json={"source": "/home/sprite/canary", "dest": "/home/sprite/copy"})
    assert response.status_code == 507, response.text
    assert response.json()["error"].startswith(f"sprite {full} is at its disk limit: ")
    assert sh(disk_server, full, "ls /home/sprite")[1].split() == ["canary", "crumbs", "more"]

    assert http.get("/v1/sprites").status_code == 200
    response = http.put(f"/v1/sprites/{other}/fs/write", params={"path": "/home/sprite/f"},
                        content=b"y" * 1024 * 1024)
    assert response.status_code == 200, response.text
    assert sh(disk_server, other, "head -c 1048576 /dev/zero > big && stat -c %s big f") == (
        0, "1048576\n1048576\n", "")


def test_checkpoint_and_restore_work_at_the_limit(
        disk_server: LocalServer, sprites: tuple[httpx.Client, list[str]]) -> None:
    http, (name, _) = sprites
    code, _, err = sh(disk_server, name, "echo kept > /home/sprite/kept")
    assert code == 0, err
    _fill(disk_server, name)
    full = checkpoint(http, name)
    restore(http, name, "v0")
    assert sh(disk_server, name, "ls /home/sprite") == (0, "", "")
    restore(http, name, full)
    code, out, err = sh(disk_server, name, "cat kept; stat -c %s canary")
    assert code == 0, err
    assert out.splitlines()[0] == "kept"
    assert int(out.splitlines()[1]) > (LIMIT_MIB - 2) * 1024 * 1024


def test_the_mount_table_inside_names_no_host_directory_of_the_tree(
        disk_server: LocalServer, sprites: tuple[httpx.Client, list[str]]) -> None:
    _, (name, _) = sprites
    code, out, err = sh(disk_server, name, "cat /proc/self/mountinfo")
    assert code == 0, err
    lines = out.splitlines()
    root = next(line.split() for line in lines if line.split()[4] == "/")
    assert root[3] == "/root" and root[-2].startswith("/dev/loop"), root
    naming_home = [line for line in lines if str(disk_server.home) in line]
    # The checkpoint views are hard links on the home's filesystem: their line names
    # their directory (README, "What the sandbox protects").
    assert [line.split()[4] for line in naming_home] == ["/.sprite/checkpoints"], naming_home
    assert f"/sprites/{name}" not in out


def test_deleting_a_sprite_frees_its_disk_at_once(disk_server: LocalServer) -> None:
    name = f"d-{uuid.uuid4().hex[:8]}"
    image = disk_server.home / "sprite-disks" / f"{name}.ext4"
    with disk_server.http() as http:
        assert http.post("/v1/sprites", json={"name": name}).status_code == 201
        assert sh(disk_server, name, "head -c 8388608 /dev/urandom > canary && "
                                     "sync -f canary")[0] == 0
        assert image.stat().st_blocks * 512 >= 8 * 1024 * 1024
        assert str(image) in _attached_images(disk_server.home)
        assert http.delete(f"/v1/sprites/{name}").status_code == 204
    assert not image.exists()
    assert not (disk_server.home / "sprite-views" / name).exists()
    eventually(lambda: not any(path.startswith(str(image))
                               for path in _attached_images(disk_server.home)),
               "the deleted sprite's loop device to go", 10)


def test_a_killed_server_leaves_no_mount_and_its_sprites_come_back(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only a root server gives sprites a disk of their own (as in CI)")
    state = tmp_path / "home"
    server = _start(state)
    try:
        if f"disk {LIMIT_MIB} MiB" not in _limits(server):
            pytest.skip(f"this host cannot give sprites a disk: {_limits(server)}")
        with server.http() as http:
            assert http.post("/v1/sprites", json={"name": "survivor"}).status_code == 201
            assert sh(server, "survivor", "echo still here > /home/sprite/note")[0] == 0
            saved = checkpoint(http, "survivor")
        assert _attached_images(state)
        server.stop(kill=True)
        eventually(lambda: not _attached_images(state), "the killed server's loop devices "
                                                       "to go", 10)
        assert not any(str(state) in line for line in Path("/proc/self/mountinfo").read_text()
                       .splitlines())
        server = _start(state)
        with server.http() as http:
            assert sh(server, "survivor", "cat /home/sprite/note; rm /home/sprite/note") == (
                0, "still here\n", "")
            restore(http, "survivor", saved)
            assert sh(server, "survivor", "cat /home/sprite/note; df -k / | tail -1")[1] \
                .startswith("still here\n/dev/loop")
    finally:
        server.stop()
        eventually(lambda: not _attached_images(state), "the server's loop devices to go", 10)


FINGERPRINT = ("cd /home/sprite && find . -type f -print0 | sort -z | xargs -0 md5sum "
               "| md5sum")
FILL = ("cd /home/sprite && python3 -c 'import os\nfor i in range(1000):\n"
        "    open(f\"f{i}\", \"wb\").write(os.urandom(32768))'")


@pytest.mark.parametrize("delay", [0.0, 0.2])
def test_a_server_killed_during_a_restore_leaves_one_whole_state_on_the_disk(
        tmp_path: Path, delay: float) -> None:
    """As test_crash_safety's kill during a restore, with the tree on its own disk (the
    restore's staging in it too) and the server restarted at once, while the killed
    one's sandboxes may still hold the image."""
    if os.geteuid() != 0:
        pytest.skip("only a root server gives sprites a disk of their own (as in CI)")
    state = tmp_path / "home"
    server = start_server(state, max_disk="256M")
    try:
        if "disk 256 MiB per sprite" not in _limits(server):
            pytest.skip(f"this host cannot give sprites a disk: {_limits(server)}")
        with server.http() as http:
            assert http.post("/v1/sprites", json={"name": "demo"}).status_code == 201
            assert sh(server, "demo", FILL)[0] == 0
            target = sh(server, "demo", FINGERPRINT)[1]
            saved = checkpoint(http, "demo")
            assert sh(server, "demo", FILL + " && echo x > only-before")[0] == 0
            before = sh(server, "demo", FINGERPRINT)[1]
            with http.stream("POST", f"/v1/sprites/demo/checkpoints/{saved}/restore") as (
                    response):
                assert response.status_code == 200
                events = [line for _, line in zip(range(4), response.iter_lines(),
                                                  strict=False)]
                assert "Restoring filesystem..." in events[-1], events
                time.sleep(delay)
                server.stop(kill=True)
        server = start_server(state, max_disk="256M")
        with server.http() as http:
            code, now, err = sh(server, "demo", FINGERPRINT + "; df -k / | tail -1")
            assert code == 0, err
            assert now.splitlines()[0] in (before.strip(), target.strip())
            assert now.splitlines()[1].startswith("/dev/loop"), now
            restore(http, "demo", saved)
            assert sh(server, "demo", FINGERPRINT)[1] == target
    finally:
        server.stop()
        eventually(lambda: not _attached_images(state), "the server's loop devices to go", 10)


def test_an_unprivileged_server_says_the_disk_is_not_limited(
        user: pwd.struct_passwd, home: Path) -> None:
    server = start_server(home / "disk-default", prefix=as_user(user, home), max_disk=None)
    try:
        limits = _limits(server)
    finally:
        server.stop()
    if "sandbox" not in limits and not limits:
        pytest.skip("as an ordinary user this host gives no sandbox")
    assert "disk of a sprite NOT limited (the server is not root: loop mounts need root)" \
        in limits


def test_a_disk_limit_below_the_minimum_is_refused_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "sprites_jupyter.local", "serve", "--home",
                           str(tmp_path / "home"), "--max-disk", "1M"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip() == ("sprites-local: --max-disk 1 MiB is too small for a "
                                   "sprite's disk: give at least 32M (0: no limit)")
