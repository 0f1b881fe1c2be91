"""Sandboxed sprites against the real server: their own root, processes, hostname, network.

Hostile commands aim only at canaries each test made itself (a directory of its own
under the host's /tmp, a ``sleep`` it started, its own server's token).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import LocalServer, start_server
from tests.local.sandbox_checks import checkpoint, eventually, restore, run, sh, start_service
from tests.local.sprite_procs import alive, host_pid, sandboxed

REPO = Path(__file__).resolve().parents[2]
GENERATED_ETC = {"passwd", "group", "hosts", "hostname", "resolv.conf"}


@pytest.fixture(autouse=True)
def _needs_sandbox(http: httpx.Client) -> None:
    if not sandboxed(http):
        reason = http.head("/v1/sprites").headers.get("sprite-local-isolation")
        pytest.skip(f"this server runs sprites {reason}; these tests check the sandbox")


@pytest.fixture
def host_canaries() -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    """A file of ours in the host's /tmp, and a host ``sleep`` of ours."""
    directory = Path(tempfile.mkdtemp(prefix="sandbox-canary-", dir="/tmp"))
    (directory / "secret.txt").write_text("host secret")
    sleeper = subprocess.Popen(["sleep", "600"])
    yield directory, sleeper
    sleeper.kill()
    sleeper.wait()
    shutil.rmtree(directory)


def test_working_directory_home_and_hostname(server: LocalServer, sprite: str) -> None:
    assert sh(server, sprite, "pwd; echo $HOME; hostname; id -un; id -u") == (
        0, f"/home/sprite\n/home/sprite\n{sprite}\nsprite\n1000\n", "")
    assert sh(server, sprite, "pwd", dir="/tmp") == (0, "/tmp\n", "")
    _, out, _err = sh(server, sprite, "grep ^sprite: /etc/passwd; cat /etc/hostname")
    assert out == f"sprite:x:1000:1000:sprite:/home/sprite:{_shell()}\n{sprite}\n"


def _shell() -> str:
    return "/bin/bash" if os.path.exists("/bin/bash") else "/bin/sh"


def test_nothing_of_the_host_is_visible(server: LocalServer, sprite: str,
                                        host_canaries: tuple[Path, subprocess.Popen[bytes]]
                                        ) -> None:
    canary_dir, sleeper = host_canaries
    hidden = [canary_dir, server.home, REPO, Path("/root"), Path(sys.prefix)]
    hidden += [Path(p.path) for p in os.scandir("/home")
               if p.path != "/home/sprite"] if os.path.isdir("/home") else []
    checks = "; ".join(f"test -e '{path}' && echo 'visible: {path}'" for path in hidden
                       if not str(path).startswith("/usr/"))
    assert sh(server, sprite, f"{checks}; true")[1] == ""
    _, out, _err = sh(server, sprite, "ps -eo pid,comm")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["python3", "sh", "ps"]
    assert sh(server, sprite, f"kill -0 {sleeper.pid} || echo unreachable")[1] == "unreachable\n"


def test_hostile_commands_leave_host_canaries_alone(
        server: LocalServer, sprite: str,
        host_canaries: tuple[Path, subprocess.Popen[bytes]]) -> None:
    canary_dir, sleeper = host_canaries
    token_file = server.home / "token"
    hostile = (f"cat {canary_dir}/secret.txt {token_file} /proc/{server.process.pid}/environ; "
               f"rm -rf {canary_dir} /tmp/* ; kill -9 {sleeper.pid} -1; "
               f"grep -r '{server.token}' /proc/*/environ /etc 2>/dev/null; "
               "cat /etc/shadow; mknod /tmp/disk b 8 0 && echo made-a-device; "
               "mount -t tmpfs none /mnt 2>/dev/null && echo mounted; true")
    _, out, _err = sh(server, sprite, hostile)
    assert "host secret" not in out and server.token not in out
    assert "made-a-device" not in out and "mounted" not in out
    assert (canary_dir / "secret.txt").read_text() == "host secret"
    assert sleeper.poll() is None
    assert server.process.poll() is None


def test_no_capabilities_and_another_user_namespace(http: httpx.Client, server: LocalServer,
                                                    sprite: str) -> None:
    pid = start_service(http, sprite, "idle", "exec sleep 600")
    host = host_pid(http, sprite, pid)
    assert os.readlink(f"/proc/{host}/ns/user") != os.readlink("/proc/self/ns/user")
    assert os.readlink(f"/proc/{host}/ns/net") != os.readlink("/proc/self/ns/net")
    status = Path(f"/proc/{host}/status").read_text()
    assert "CapEff:\t0000000000000000" in status and "CapPrm:\t0000000000000000" in status


def test_processes_share_one_sandbox(http: httpx.Client, server: LocalServer,
                                     sprite: str, tmp_path: Path) -> None:
    pid = start_service(http, sprite, "listener",
                        'trap "cat /tmp/note > /tmp/heard" USR1; echo up; '
                        "while true; do sleep 0.05; done")
    _, out, _err = sh(server, sprite, "ps -eo pid,args")
    assert f"{pid} sh -c trap" in " ".join(out.split())
    assert sh(server, sprite, f"echo from-exec > /tmp/note; kill -USR1 {pid}")[0] == 0
    eventually(lambda: sh(server, sprite, "cat /tmp/heard 2>/dev/null")[1] == "from-exec\n",
               "the service to hear the exec's signal and read its file")


def test_ps_shows_only_this_sprite(http: httpx.Client, server: LocalServer, sprite: str) -> None:
    other = f"{sprite}-other"
    assert http.post("/v1/sprites", json={"name": other}).status_code == 201
    try:
        start_service(http, other, "elsewhere", "exec sleep 611")
        start_service(http, sprite, "here", "exec sleep 612")
        _, out, _err = sh(server, sprite, "ps -eo args")
        assert "sleep 612" in out and "sleep 611" not in out
        assert len(out.splitlines()) <= 5  # header, init, the service, sh, ps
    finally:
        http.delete(f"/v1/sprites/{other}")


def test_own_network_with_loopback_and_low_ports(server: LocalServer, sprite: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as host_listener:
        port = host_listener.getsockname()[1]
        probe = ("import socket\n"
                 f"try:\n socket.create_connection(('127.0.0.1', {port}), 2); print('host')\n"
                 "except OSError: print('unreachable')\n"
                 "s = socket.create_server(('127.0.0.1', 80)); c = socket.create_connection("
                 "('127.0.0.1', 80)); print('own loopback on port 80')\n")
        assert sh(server, sprite, f"python3 -c \"{probe}\"") == (
            0, "unreachable\nown loopback on port 80\n", "")
    assert sh(server, sprite, "cat /etc/resolv.conf; grep -c . /etc/hosts >/dev/null && "
                              "grep -w \"$(hostname)\" /etc/hosts | wc -l")[1] == (
        "nameserver 127.0.0.1\n1\n")


def test_children_start_with_default_signals(tmp_path: Path) -> None:
    def ignore_hup_block_usr1() -> None:  # as a server started under nohup, with a mask
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    local = start_server(tmp_path / "home", preexec_fn=ignore_hup_block_usr1)
    try:
        with local.http() as http:
            assert http.post("/v1/sprites", json={"name": "sigs"}).status_code == 201
            _, out, _err = sh(local, "sigs", "grep -E '^Sig(Ign|Blk)' /proc/self/status")
        assert out == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    finally:
        local.stop()


def test_commands_get_no_fd_but_their_stdio(server: LocalServer, sprite: str) -> None:
    """The init starts commands without closing fds in between: none of its own (its
    control socket, what bubblewrap passed it) may reach them, piped or on a pty."""
    script = "ls /proc/self/fd | sort -n | tr '\\n' ' '"
    assert sh(server, sprite, f"exec {script}")[1] == "0 1 2 3 "
    _, transcript = run(server, sprite, ["sh", "-c", script], tty="true")
    assert transcript.raw.decode().split() == ["0", "1", "2", "3"]


def test_writes_stay_in_the_sprite_and_persist(tmp_path: Path) -> None:
    """Every write lands in the sprite; the host's directories under /usr stay read-only
    to it (EACCES, as the README says): they are host root's, and the sprite user is
    never host root, whoever runs the server."""
    mark = tmp_path.name
    under_usr = f"/usr/local/{mark}"
    places = [f"/tmp/{mark}", f"/etc/{mark}", f"/opt/{mark}", f"/{mark}"]
    local = start_server(tmp_path / "home")
    try:
        with local.http() as http:
            assert http.post("/v1/sprites", json={"name": "keep"}).status_code == 201
            writes = "; ".join(f"echo {path} > {path}" for path in places)
            assert sh(local, "keep", writes) == (0, "", "")
            _assert_permission_denied(local, "keep", f"echo {under_usr} > {under_usr}")
        for path in [*places, under_usr]:
            assert not os.path.exists(path), f"{path} reached the host"
        local.stop()
        local = start_server(tmp_path / "home")
        reads = "; ".join(f"cat {path}" for path in places)
        assert sh(local, "keep", reads) == (0, "".join(f"{p}\n" for p in places), "")
    finally:
        local.stop()


def _assert_permission_denied(server: LocalServer, sprite: str, script: str) -> None:
    code, _, err = sh(server, sprite, script)
    assert code != 0 and "Permission denied" in err, (code, err)


def _a_base_file(directory: str, *, walk: bool = True) -> str:
    """A small regular file of the host's ``directory`` (or beneath it, with ``walk``) for
    the sprite to delete in its layer; never one the sandbox generates."""
    for parent, _, files in os.walk(directory):
        for name in sorted(set(files) - GENERATED_ETC):
            path = os.path.join(parent, name)
            if (os.path.isfile(path) and not os.path.islink(path)
                    and os.stat(path).st_mode & stat.S_IROTH):  # not masked in the sandbox
                return path
        if not walk:
            break
    pytest.skip(f"the host has no regular file in {directory} to delete in a sprite")


def test_checkpoints_keep_deletions_of_base_files(http: httpx.Client, server: LocalServer,
                                                  sprite: str) -> None:
    """The host's directories under /usr are read-only to the sprite (EACCES), so it
    deletes a base file right in /etc, a directory of its own, and puts a directory in
    its place (an opaque directory over the whiteout)."""
    _assert_permission_denied(server, sprite, f"rm {_a_base_file('/usr/share/doc')}")
    base_file = _a_base_file("/etc", walk=False)
    with_file = checkpoint(http, sprite)
    script = f"rm {base_file} && mkdir {base_file} && echo mine > {base_file}/new.txt"
    assert sh(server, sprite, script)[0] == 0
    changed = checkpoint(http, sprite)
    assert os.path.isfile(base_file), "the deletion reached the host"
    listing = f"test -f {base_file} && echo present || ls {base_file}"
    restore(http, sprite, with_file)
    assert sh(server, sprite, listing)[1] == "present\n"
    restore(http, sprite, changed)
    assert sh(server, sprite, listing)[1] == "new.txt\n"


def test_restore_ends_every_process_of_the_sprite(http: httpx.Client, server: LocalServer,
                                                  sprite: str) -> None:
    target = checkpoint(http, sprite)
    _, out, _err = sh(server, sprite, "setsid nohup sleep 613 >/dev/null 2>&1 & echo $!")
    escaped = host_pid(http, sprite, int(out))
    restore(http, sprite, target)
    eventually(lambda: not alive(escaped), "the detached process to end with the sandbox")
    assert "sleep 613" not in sh(server, sprite, "ps -eo args")[1]


def test_killed_server_leaves_no_sprite_process(tmp_path: Path) -> None:
    local = start_server(tmp_path / "home")
    try:
        with local.http() as http:
            assert http.post("/v1/sprites", json={"name": "orphans"}).status_code == 201
            service = start_service(http, "orphans", "svc", "exec sleep 614")
            _, out, _err = sh(local, "orphans", "setsid nohup sleep 615 >/dev/null 2>&1 & "
                                                "echo $!")
            pids = [host_pid(http, "orphans", pid) for pid in (service, int(out))]
        local.stop(kill=True)
        eventually(lambda: not any(alive(pid) for pid in pids), "the sprite's processes to end")
    finally:
        local.stop()


def test_platform_directory_is_read_only_inside(http: httpx.Client, server: LocalServer,
                                                sprite: str) -> None:
    start_service(http, sprite, "web", "echo hello; exec sleep 600")
    eventually(lambda: "hello" in sh(server, sprite, "cat /.sprite/logs/services/web.log")[1],
               "the service's log inside the sprite")
    _, out, err = sh(server, sprite, "rm -rf /.sprite/logs /.sprite/services/web.json; "
                                        "ln -sf /etc /.sprite/policy 2>&1; "
                                        "ls /.sprite/services")
    assert "web.json" in out and "Read-only file system" in out + err
    assert http.get(f"/v1/sprites/{sprite}/services/web").status_code == 200

