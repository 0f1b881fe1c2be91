"""The filesystem API against files a sprite's own processes planted to reach the host:
fifos, sockets and devices, symlinks and hard links toward a canary the test made
outside the sprite. Each comes back 4xx (or acts inside the sprite only), the server
stays responsive, and the canary is untouched."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalServer
from tests.local.exec_ws import open_exec, read_to_close, session_info
from tests.local.sprite_shell import must, server_in_each_mode, sh  # noqa: F401

HOME = "/home/sprite"


def _fs(sprite: str, op: str) -> str:
    return f"/v1/sprites/{sprite}/fs/{op}"


@dataclass
class Canary:
    """A host file outside the sprite, and what it must still be at the end."""

    path: Path
    content: bytes
    snapshot: tuple[int, int, int, int, int]

    @classmethod
    def make(cls, directory: Path) -> Canary:
        directory.mkdir(exist_ok=True)
        path = directory / "secret.txt"
        content = b"host canary: must never be read or changed through a sprite"
        path.write_bytes(content)
        os.chmod(path, 0o640)
        with suppress(PermissionError):  # owned by someone else, a chown would show
            os.chown(path, 4242, 4242)
        return cls(path, content, cls._state(path))

    @staticmethod
    def _state(path: Path) -> tuple[int, int, int, int, int]:
        info = path.stat()
        return info.st_mode, info.st_uid, info.st_gid, info.st_mtime_ns, info.st_nlink

    def assert_untouched(self) -> None:
        assert self.path.read_bytes() == self.content
        state = self._state(self.path)
        # a sprite process may hard-link it (unsandboxed); nothing else may change
        assert state[:4] == self.snapshot[:4]
        assert sorted(os.listdir(self.path.parent)) == ["secret.txt"]


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    return Canary.make(tmp_path / "canary")


def _answer(response: httpx.Response, status: int, *words: str) -> dict:
    """A clear 4xx in the filesystem error shape, naming no host path."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "code", "path"}
    for word in words:
        assert word in body["error"], body
    assert "/tmp/" not in response.text and "sprites-home" not in response.text
    return body


def _sprite_uid(server: LocalServer, sprite: str) -> int:
    """The sprite user's uid as the sprite sees it (a chown target that exists there)."""
    return int(must(server, sprite, "id -u"))


def _responsive(http: httpx.Client, sprite: str) -> None:
    assert http.get(f"/v1/sprites/{sprite}", timeout=30).status_code == 200


def test_a_fifo_is_refused_by_every_operation_without_blocking(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    must(server, sprite, "mkfifo pipe && mkdir tree && mkfifo tree/pipe")
    short = httpx.Timeout(20)
    write = http.put(_fs(sprite, "write"), params={"path": f"{HOME}/pipe"}, content=b"x",
                     timeout=short)
    assert _answer(write, 400, "fifo")["path"] == f"{HOME}/pipe"
    _responsive(http, sprite)
    _answer(http.get(_fs(sprite, "read"), params={"path": f"{HOME}/pipe"}, timeout=short),
            400, "fifo")
    _responsive(http, sprite)
    _answer(http.post(_fs(sprite, "copy"), json={"source": f"{HOME}/pipe",
                                                 "dest": f"{HOME}/copy"}, timeout=short),
            400, "fifo")
    _answer(http.post(_fs(sprite, "copy"), json={"source": f"{HOME}/tree",
                                                 "dest": f"{HOME}/tree2"}, timeout=short),
            400, "fifo", f"{HOME}/tree/pipe")
    _responsive(http, sprite)
    names = [e["name"] for e in http.get(_fs(sprite, "list"), params={"path": HOME}).json()[
        "entries"]]
    assert names == ["pipe", "tree"]  # no copy, no temporary file left behind
    assert http.delete(_fs(sprite, "delete"), params={"path": f"{HOME}/pipe"}).status_code == 200


def test_a_socket_is_refused(server: LocalServer, http: httpx.Client, sprite: str) -> None:
    must(server, sprite, "python3 -c \"import socket; socket.socket(socket.AF_UNIX)"
                         ".bind('sock')\"")
    _answer(http.get(_fs(sprite, "read"), params={"path": f"{HOME}/sock"}), 400, "socket")
    _answer(http.put(_fs(sprite, "write"), params={"path": f"{HOME}/sock"}, content=b"x"),
            400, "socket")
    _responsive(http, sprite)


def _character_device(server: LocalServer, http: httpx.Client, sprite: str) -> str:
    """A character device inside the sprite: its /dev/zero when the sandbox gives it one,
    else one a sprite process made (possible only unsandboxed, as root)."""
    listed = http.get(_fs(sprite, "list"), params={"path": "/dev/zero"})
    if listed.status_code == 200:
        return "/dev/zero"
    code, output = sh(server, sprite, "mknod zero c 1 5")
    if code != 0:
        pytest.skip(f"no character device can exist in this sprite (mknod: {output.strip()})")
    return f"{HOME}/zero"


def test_copying_or_reading_a_character_device_is_refused(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    device = _character_device(server, http, sprite)
    copy = http.post(_fs(sprite, "copy"), json={"source": device, "dest": f"{HOME}/zeros"},
                     timeout=20)
    _answer(copy, 400, "character device")
    _answer(http.get(_fs(sprite, "read"), params={"path": device}, timeout=20), 400,
            "character device")
    _answer(http.put(_fs(sprite, "write"), params={"path": device}, content=b"x", timeout=20),
            400, "character device")
    _responsive(http, sprite)
    assert http.get(_fs(sprite, "list"), params={"path": f"{HOME}/zeros"}).status_code == 404


def test_a_symlink_to_the_host_zero_device_is_not_followed_out(
        server: LocalServer, http: httpx.Client, sprite: str) -> None:
    must(server, sprite, "ln -s /dev/zero zero-link")
    response = http.post(_fs(sprite, "copy"), json={"source": f"{HOME}/zero-link",
                                                    "dest": f"{HOME}/zeros"}, timeout=20)
    # inside the sprite's view: its own /dev/zero (refused) or none at all
    assert response.status_code in (400, 404), response.text
    _responsive(http, sprite)


def test_symlinks_toward_the_host_act_inside_the_sprite_only(
        server: LocalServer, http: httpx.Client, sprite: str, canary: Canary) -> None:
    uid = _sprite_uid(server, sprite)
    climb = "../" * 30 + str(canary.path).lstrip("/")
    must(server, sprite, f"ln -s {canary.path} file-link && ln -s {canary.path.parent} dir-link"
                         f" && ln -s {climb} climb-link && echo mine > mine.txt")
    for link in ("file-link", "dir-link/secret.txt", "climb-link"):
        path = f"{HOME}/{link}"
        _answer(http.get(_fs(sprite, "read"), params={"path": path}), 404)
        _answer(http.post(_fs(sprite, "chmod"), json={"path": path, "mode": "0777"}), 404)
        _answer(http.post(_fs(sprite, "chown"), json={"path": path, "uid": uid}), 404)
        _answer(http.post(_fs(sprite, "copy"), json={"source": path, "dest": f"{HOME}/c"}), 404)
        _answer(http.post(_fs(sprite, "copy"), json={"source": f"{HOME}/mine.txt",
                                                     "dest": path}), 404)
        _answer(http.put(_fs(sprite, "write"), params={"path": path}, content=b"owned"), 404)
        _answer(http.post(_fs(sprite, "rename"), json={"source": f"{HOME}/mine.txt",
                                                       "dest": f"{path}/x"}), 404)
    _answer(http.put(_fs(sprite, "write"), params={"path": f"{HOME}/dir-link/new"},
                     content=b"owned"), 404)
    _answer(http.delete(_fs(sprite, "delete"), params={"path": f"{HOME}/dir-link/secret.txt"}),
            404)
    _responsive(http, sprite)
    canary.assert_untouched()


def test_hard_links_are_replaced_not_written_through(
        server: LocalServer, http: httpx.Client, sprite: str, canary: Canary) -> None:
    uid = _sprite_uid(server, sprite)
    must(server, sprite, "echo original > a && ln a b")
    written = http.put(_fs(sprite, "write"), params={"path": f"{HOME}/b"}, content=b"new")
    assert written.status_code == 200
    assert http.get(_fs(sprite, "read"), params={"path": f"{HOME}/a"}).content == b"original\n"
    assert http.get(_fs(sprite, "read"), params={"path": f"{HOME}/b"}).content == b"new"
    must(server, sprite, "ln a c")
    _answer(http.post(_fs(sprite, "chmod"), json={"path": f"{HOME}/a", "mode": "0600"}), 403,
            "hard links")
    _answer(http.post(_fs(sprite, "chown"), json={"path": f"{HOME}/a", "uid": uid}), 403,
            "hard links")
    # a hard link to the host's canary exists only where a sprite process can see it
    if sh(server, sprite, f"ln {canary.path} host-link")[0] == 0:
        link = f"{HOME}/host-link"
        _answer(http.post(_fs(sprite, "chmod"), json={"path": link, "mode": "0666"}), 403,
                "hard links")
        _answer(http.post(_fs(sprite, "chown"), json={"path": link, "uid": uid}), 403,
                "hard links")
        _answer(http.post(_fs(sprite, "chmod"), json={"path": HOME, "mode": "0755",
                                                      "recursive": True}), 403, "hard links")
        assert http.put(_fs(sprite, "write"), params={"path": link},
                        content=b"owned").status_code == 200
        must(server, sprite, f"ln {canary.path} host-link2")
        assert http.post(_fs(sprite, "copy"), json={"source": f"{HOME}/a",
                                                    "dest": f"{HOME}/host-link2"}
                         ).status_code == 200
    _responsive(http, sprite)
    canary.assert_untouched()


# A sprite process swaps x between a directory holding the sprite's own secret.txt and
# a symlink toward the canary's directory, atomically (renameat2 RENAME_EXCHANGE), as
# fast as it can, until the test writes "stop".
_SWAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
os.mkdir("x")
with open("x/secret.txt", "w") as f:
    f.write("sprite content")
os.symlink(sys.argv[1], "y")
open("ready", "w").close()
n = 0
while not os.path.exists("stop") and n < 20_000_000:
    if libc.renameat2(-100, b"x", -100, b"y", 2) != 0:
        sys.exit(f"renameat2 failed: errno {ctypes.get_errno()}")
    n += 1
"""


@pytest.mark.parametrize("style", ["absolute", "climbing"])
def test_racing_a_directory_against_a_symlink_never_reaches_the_host(
        server: LocalServer, http: httpx.Client, sprite: str, canary: Canary,
        style: str) -> None:
    target = str(canary.path.parent)
    if style == "climbing":
        target = "../" * 30 + target.lstrip("/")
    http.put(_fs(sprite, "write"), params={"path": f"{HOME}/swap.py"},
             content=_SWAPPER.encode())
    with open_exec(server, sprite, ["python3", "swap.py", target]) as ws:
        session_info(ws)
        for _ in range(400):
            if http.get(_fs(sprite, "list"), params={"path": f"{HOME}/ready"}).status_code == 200:
                break
        else:
            pytest.fail("the swapping process never started")
        outcomes: dict[str, int] = {}
        for i in range(300):
            read = http.get(_fs(sprite, "read"), params={"path": f"{HOME}/x/secret.txt"})
            assert canary.content not in read.content
            key = f"read {read.status_code}"
            if read.status_code == 200:
                assert read.content == b"sprite content"
            outcomes[key] = outcomes.get(key, 0) + 1
            write = http.put(_fs(sprite, "write"), params={"path": f"{HOME}/x/w{i}",
                                                           "mkdirParents": "false"},
                             content=b"planted")
            assert write.status_code in (200, 404), write.text
            chmod = http.post(_fs(sprite, "chmod"), json={"path": f"{HOME}/x/secret.txt",
                                                          "mode": "0604"})
            assert chmod.status_code in (200, 404), chmod.text
        http.put(_fs(sprite, "write"), params={"path": f"{HOME}/stop"}, content=b"")
        transcript = read_to_close(ws)
    assert transcript.messages[-1] == b"\x03\x00", transcript.messages
    assert outcomes.get("read 200", 0) > 0, outcomes  # the race really ran both ways
    assert outcomes.get("read 404", 0) > 0, outcomes
    canary.assert_untouched()


@pytest.fixture
def sprite_proc(server: LocalServer, http: httpx.Client, sprite: str) -> Iterator[None]:
    """A procfs at the sprite's /proc: the sandbox's own, else one the test mounts in the
    sprite's tree (unsandboxed, where mounting is permitted)."""
    if http.get(_fs(sprite, "list"), params={"path": "/proc/self"}).status_code == 200:
        yield
        return
    mount_point = server.home / "sprites" / sprite / "root" / "proc"
    mount_point.mkdir(exist_ok=True)  # a new tree has the sandbox's mount points
    done = subprocess.run(["mount", "-t", "proc", "proc", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"no /proc in this sprite and none can be mounted: {done.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_kernel_file_systems_are_not_read_or_changed_with_the_servers_privileges(
        http: httpx.Client, sprite: str, sprite_proc: None) -> None:
    _answer(http.get(_fs(sprite, "read"), params={"path": "/proc/kallsyms"}), 400,
            "kernel file system")
    _answer(http.post(_fs(sprite, "copy"), json={"source": "/proc/kallsyms",
                                                 "dest": f"{HOME}/k"}), 400,
            "kernel file system")
    _answer(http.post(_fs(sprite, "chmod"), json={"path": "/proc/sys", "mode": "0777"}), 400,
            "kernel file system")
    assert http.get(_fs(sprite, "list"), params={"path": "/proc"}).status_code == 200
    _responsive(http, sprite)
