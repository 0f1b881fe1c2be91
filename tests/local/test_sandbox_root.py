"""A sprite never holds host root: its user, /proc, host files, setuid bits, its init.

Each isolation check runs against the session's server (root, as in CI) and against a
server run as an ordinary user the test makes (``test_sandbox_unprivileged``'s fixtures).
Nothing here writes host state beyond canaries the test makes and removes: writability
is checked by opening for write without writing.
"""

from __future__ import annotations

import ctypes
import os
import socket
import stat
import struct
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.local.runtime.sandbox.host_ids import RANGE_START, SPRITE_ID
from tests.conftest import LocalServer, start_server
from tests.local.sandbox_checks import checkpoint, restore, sh
from tests.local.sprite_procs import fresh_sandboxed_sprite, host_pid, sandboxed

SPRITE_HOST_ID = RANGE_START + SPRITE_ID
_SYS_PIDFD_GETFD = 438  # the same number on every architecture


@pytest.fixture(params=["as-root", "as-user"])
def target(request: pytest.FixtureRequest) -> Iterator[tuple[LocalServer, httpx.Client, str]]:
    """A fresh sandboxed sprite on a root server, or on an ordinary user's server."""
    if request.param == "as-root":
        if os.geteuid() != 0:
            pytest.skip("the server runs as root only when the tests do (as in CI)")
        server = request.getfixturevalue("server")
    else:
        server = request.getfixturevalue("local")
    with fresh_sandboxed_sprite(server, "r") as made:
        yield made


@pytest.fixture
def root_canary() -> Iterator[str]:
    """A root-only (0600) file the test puts under /opt, a base directory of sprites."""
    if os.geteuid() != 0 or not os.path.isdir("/opt") or os.path.islink("/opt"):
        pytest.skip("needs root and a real /opt to place a root-only canary")
    path = f"/opt/sprites-canary-{uuid.uuid4().hex[:8]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"root-only canary\n")
        os.close(fd)
        yield path
    finally:
        os.unlink(path)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def test_sprite_processes_never_run_as_host_root(
        target: tuple[LocalServer, httpx.Client, str]) -> None:
    server, http, name = target
    _, out, _ = sh(server, name, "sleep 612 >/dev/null 2>&1 & echo $!")
    try:
        status = _status(host_pid(http, name, int(out)))
    finally:
        sh(server, name, "pkill -f 'sleep 612'; true")
    uids, gids = set(status["Uid"].split()), set(status["Gid"].split())
    assert "0" not in uids and "0" not in gids and status["Groups"] == "", status
    if _runs_as_root(server):
        assert uids == gids == {str(SPRITE_HOST_ID)}
    code, out, _ = sh(server, name, "id -u; grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status")
    assert code == 0
    assert out.splitlines()[0] == "1000"
    assert all(line.split()[1] == "0000000000000000" for line in out.splitlines()[1:]), out


def _runs_as_root(server: LocalServer) -> bool:
    return os.stat(f"/proc/{server.process.pid}").st_uid == 0


def test_kernel_knobs_in_proc_are_read_only_or_masked(
        target: tuple[LocalServer, httpx.Client, str]) -> None:
    server, _, name = target
    script = """
import os
for path in ("/proc/sys/kernel/core_pattern", "/proc/sys/kernel/poweroff_cmd",
             "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger"):
    try:
        os.close(os.open(path, os.O_WRONLY))  # opened, never written
        print("writable", path)
    except OSError as exc:
        print("refused", path, exc.strerror)
with open("/proc/sys/kernel/ostype") as f:
    print("readable", f.read().strip())
if os.path.exists("/proc/kcore"):
    print("kcore", os.stat("/proc/kcore").st_size)
"""
    code, out, err = sh(server, name, f"python3 -c '{script}'")
    assert code == 0, err
    assert "writable" not in out, out
    assert out.count("refused") == 4 and "readable Linux" in out
    assert "kcore" not in out or "kcore 0" in out


def test_root_only_host_files_stay_unreadable(
        target: tuple[LocalServer, httpx.Client, str], root_canary: str) -> None:
    server, http, name = target
    _, out, err = sh(server, name, f"cat {root_canary}; ln -s {root_canary} link")
    assert "canary" not in out and "Permission denied" in err
    for path in (root_canary, "/home/sprite/link"):
        response = http.get(f"/v1/sprites/{name}/fs/read", params={"path": path})
        assert response.status_code == 403, (path, response.status_code, response.text)
        assert b"root-only canary" not in response.content


def _tree(server: LocalServer, name: str) -> Path:
    return server.home / "sprites" / name / "root"


def test_setuid_bits_never_make_root_owned_setuid_files(
        target: tuple[LocalServer, httpx.Client, str]) -> None:
    server, http, name = target
    code, _, err = sh(server, name, "cp /bin/true mine && chmod 6755 mine")
    assert code == 0, err
    response = http.put(f"/v1/sprites/{name}/fs/write",
                        params={"path": "/home/sprite/api", "mode": "6777"}, content=b"x")
    assert response.status_code == 200, response.text
    if os.geteuid() != 0:
        pytest.skip("reading the sprite's tree from the host needs root")
    found = 0
    for directory, _, files in os.walk(_tree(server, name)):
        for file_name in files:
            info = os.lstat(os.path.join(directory, file_name))
            if file_name in ("mine", "api"):
                found += 1
                assert info.st_uid != 0 and info.st_gid != 0
            if info.st_mode & (stat.S_ISUID | stat.S_ISGID):
                assert info.st_uid != 0, f"{directory}/{file_name} is setuid root"
    assert found == 2


def test_files_the_api_writes_are_the_sprite_users(
        target: tuple[LocalServer, httpx.Client, str]) -> None:
    server, http, name = target
    response = http.put(f"/v1/sprites/{name}/fs/write",
                        params={"path": "/home/sprite/new/dir/file.txt"}, content=b"one\n")
    assert response.status_code == 200, response.text
    assert sh(server, name, "stat -c %u:%g new new/dir new/dir/file.txt && "
                            "echo two >> new/dir/file.txt && cat new/dir/file.txt") == (
        0, "1000:1000\n1000:1000\n1000:1000\none\ntwo\n", "")


def test_the_init_is_neither_traceable_nor_robbed_of_its_socket(
        target: tuple[LocalServer, httpx.Client, str]) -> None:
    server, _, name = target
    script = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
pidfd = os.pidfd_open(1)
taken = [n for n in range(32) if libc.syscall({_SYS_PIDFD_GETFD}, pidfd, n, 0) >= 0]
print("taken", taken)
for path in ("/proc/1/fd", "/proc/1/environ", "/proc/1/mem"):
    try:
        os.listdir(path) if path.endswith("fd") else open(path, "rb").close()
        print("open", path)
    except OSError as exc:
        print("refused", path)
"""
    code, out, err = sh(server, name, f"python3 -c '{script}'")
    assert code == 0, err
    assert "taken []" in out and "open" not in out, out


def test_a_home_made_by_an_older_root_server_is_taken_over(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("an older server's root-owned home can only be made as root")
    running = start_server(tmp_path / "home")
    try:
        with running.http() as http:
            assert http.post("/v1/sprites", json={"name": "old"}).status_code == 201
            assert sh(running, "old", "echo before > kept && cp /bin/true tool")[0] == 0
        running.stop()
        tree = _tree(running, "old")
        for directory, _, files in os.walk(tree):  # as the old mapping left it
            for entry in (directory, *(os.path.join(directory, n) for n in files)):
                os.chown(entry, 0, 0, follow_symlinks=False)
        os.chmod(tree / "home/sprite/tool", 0o4755)
        (tmp_path / "home/sprites/old/sandbox/tree-owner").unlink()
        running = start_server(tmp_path / "home")
        assert sh(running, "old", "echo after >> kept && cat kept && ./tool && echo ran") == (
            0, "before\nafter\nran\n", "")
        tool = os.lstat(tree / "home/sprite/tool")
        assert tool.st_uid == SPRITE_HOST_ID and not tool.st_mode & stat.S_ISUID
    finally:
        running.stop()


def _pidfd_getfd(pid: int, fd: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        taken = libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0)
        if taken < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
        return taken
    finally:
        os.close(pidfd)


def _server_fds(server: LocalServer) -> int:
    return len(os.listdir(f"/proc/{server.process.pid}/fd"))


def test_fault_init_flooding_malformed_messages_leaks_no_fd(tmp_path: Path) -> None:
    """Fault: the init sending garbage, which no sprite process can make it do (the init
    is not dumpable); the test, as root, takes the init's socket to play that init."""
    if os.geteuid() != 0:
        pytest.skip("taking a sandbox init's socket needs root (CAP_SYS_PTRACE)")
    running = start_server(tmp_path / "home")
    try:
        with running.http() as http:
            for name in ("victim", "other"):
                assert http.post("/v1/sprites", json={"name": name}).status_code == 201
                assert sh(running, name, "true")[0] == 0
            if not sandboxed(http):
                pytest.skip("this host gives no sandbox")
            init = host_pid(http, "victim", 1)
            argv = Path(f"/proc/{init}/cmdline").read_bytes().split(b"\0")
            control_fd = int(argv[argv.index(b"-c") + 2])
            before = _server_fds(running)
            control = socket.socket(fileno=_pidfd_getfd(init, control_fd))
            attached = os.open(os.devnull, os.O_RDONLY)
            garbage = [b"not json", b"[]", b'{"exit": "x"}', b'{"id": [1]}', b"\xff"]
            sent = 0
            try:
                for number in range(2000):
                    control.sendmsg([garbage[number % len(garbage)]], [
                        (socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("2i", attached,
                                                                           attached))])
                    sent += 1
            except OSError:
                pass  # the server gave up on that sandbox and closed its end
            finally:
                os.close(attached)
                control.close()
            assert sent >= 1
            assert _server_fds(running) <= before, "the server kept fds the init sent"
            assert sh(running, "other", "echo fine") == (0, "fine\n", "")
            assert sh(running, "victim", "echo restarted") == (0, "restarted\n", "")
            assert http.get("/v1/sprites/victim").status_code == 200
    finally:
        running.stop()


def test_the_sprite_reads_its_checkpoint_views(
        target: tuple[LocalServer, httpx.Client, str]) -> None:
    server, http, name = target
    assert sh(server, name, "mkdir -m 700 private && echo kept > private/note")[0] == 0
    checkpoint_id = checkpoint(http, name)
    view = f"/.sprite/checkpoints/{checkpoint_id}/home/sprite/private"
    wait = f"until [ -d /.sprite/checkpoints/{checkpoint_id} ]; do sleep 0.05; done"  # built
    # after the checkpoint returns, as the diff helper waits for it
    assert sh(server, name, f"{wait}; cat {view}/note; stat -c %a {view}") == (
        0, "kept\n700\n", "")


def test_restored_files_stay_the_sprite_users(
        target: tuple[LocalServer, httpx.Client, str]) -> None:
    server, http, name = target
    assert sh(server, name, "mkdir -p kept/dir && echo one > kept/dir/file && "
                            "ln -s dir kept/link")[0] == 0
    checkpoint_id = checkpoint(http, name)
    assert sh(server, name, "rm -rf kept")[0] == 0
    restore(http, name, checkpoint_id)
    if _runs_as_root(server):  # written as the sprite user: no walk at the next start
        kept = _tree(server, name) / "home" / "sprite" / "kept"
        owners = {os.lstat(path)[stat.ST_UID:stat.ST_GID + 1]
                  for path in (kept, kept / "dir", kept / "dir" / "file", kept / "link")}
        assert owners == {(SPRITE_HOST_ID, SPRITE_HOST_ID)}, owners
    assert sh(server, name, "echo two >> kept/dir/file && touch kept/dir/new && "
                            "stat -c %u:%g kept kept/dir kept/dir/file kept/link && "
                            "cat kept/dir/file") == (
        0, "1000:1000\n" * 4 + "one\ntwo\n", "")


def test_no_two_sandboxes_share_a_user_namespace(server: LocalServer) -> None:
    """A root server makes each sandbox's user namespaces ahead of time: a spare goes to
    exactly one sandbox, never to a second sprite nor to the same sprite's restart."""
    if os.geteuid() != 0:
        pytest.skip("spare namespaces are a root server's (the tests run as root in CI)")
    names = [f"ns-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with server.http() as http:
        if not sandboxed(http):
            pytest.skip("this host gives no sandbox")
        try:
            for name in names:
                assert http.post("/v1/sprites", json={"name": name}).status_code == 201
            seen = [sh(server, name, "readlink /proc/self/ns/user")[1] for name in names]
            checkpoint_id = checkpoint(http, names[0])
            restore(http, names[0], checkpoint_id)  # stops the sandbox; the next exec starts one
            seen.append(sh(server, names[0], "readlink /proc/self/ns/user")[1])
        finally:
            for name in names:
                http.delete(f"/v1/sprites/{name}")
    assert all(entry.startswith("user:[") for entry in seen), seen
    assert len(set(seen)) == len(seen), seen
