"""Commands over the control connection (reference section 5), through the real local
server: what a command does is the same as over its own exec socket, and the server's
log shows how many sockets carried them."""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sprites_jupyter.client import Command, InvalidRequest, Sprite, SpritesClient
from sprites_jupyter.client.control_pool import IDLE_CLOSE
from sprites_jupyter.local.testing import LocalServer, start_server
from tests.waiting import interrupt_once_running

CONTROL = '"WebSocket /v1/sprites/{}/control" [accepted]'
DIRECT = '"WebSocket /v1/sprites/{}/exec?'


class LoggedServer:
    """A local server whose log (``--log-level info``) lists every WebSocket it accepts."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.log = home / "server.log"
        self.server = self._start(0)

    def _start(self, port: int) -> LocalServer:
        with self.log.open("a") as log:
            return start_server(self.home / "data", port=port, stderr=log,
                                args=("--log-level", "info"))

    def sockets(self, sprite: str) -> tuple[int, int]:
        """How many control and direct exec sockets the server accepted for ``sprite``."""
        text = self.log.read_text()
        return text.count(CONTROL.format(sprite)), text.count(DIRECT.format(sprite))

    def restart(self) -> None:
        """Stop the server and start it again on the same address and home."""
        port = int(self.server.url.rsplit(":", 1)[1])
        self.server.stop()
        self.server = self._start(port)


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoggedServer]:
    running = LoggedServer(tmp_path_factory.mktemp("control-exec"))
    yield running
    running.server.stop()


@pytest.fixture
def on_control(logged: LoggedServer) -> Iterator[tuple[Sprite, LoggedServer]]:
    """A fresh sprite on a client that has run its first command (over its own socket:
    that upgrade tells the client the server offers control)."""
    name = f"c-{uuid.uuid4().hex[:10]}"
    with SpritesClient(logged.server.token, logged.server.url) as client:
        client.create_sprite(name)
        sprite = client.sprite(name)
        assert sprite.run("true").exit_code == 0
        assert logged.sockets(name) == (0, 1)
        yield sprite, logged
        client.delete_sprite(name)


def test_sequential_commands_share_one_control_socket(
        on_control: tuple[Sprite, LoggedServer]) -> None:
    sprite, logged = on_control
    results = [sprite.run("sh", "-c", f"echo out{i}; echo err{i} >&2; exit {i}")
               for i in range(6)]
    assert [(r.stdout, r.stderr, r.exit_code) for r in results] == [
        (f"out{i}\n", f"err{i}\n", i) for i in range(6)]
    assert logged.sockets(sprite.name) == (1, 1)


def test_stdin_reaches_the_process_byte_for_byte(on_control: tuple[Sprite, LoggedServer]
                                                  ) -> None:
    sprite, logged = on_control
    # 32 KiB + 1 bytes ending in 0x04: a 1-byte last frame would read as end-of-input
    data = os.urandom(32 * 1024) + b"\x04"
    digest = sprite.run("sha256sum", stdin=data).stdout.split()[0]
    assert digest == hashlib.sha256(data).hexdigest()
    with sprite.command("cat") as cat:
        cat.write(b"\x04")
        cat.write(b"\x00\x04 second\n")
        cat.close_stdin()
        output = b"".join(chunk.data for chunk in cat)
    assert (output, cat.exit_code) == (b"\x04\x00\x04 second\n", 0)
    assert sprite.run("wc", "-c", stdin=b"").stdout.strip() == "0"
    assert sprite.run("od", "-An", "-tx1", stdin=b"\x04").stdout.split() == ["04"]
    assert logged.sockets(sprite.name) == (1, 2)  # that one byte took a socket of its own


def test_a_command_without_stdin_sees_its_input_end_at_once(
        on_control: tuple[Sprite, LoggedServer]) -> None:
    """As sprites-go, the client ends no input it never had (``stdin=false``): a command
    that reads its input still sees it end, and the socket serves the next command."""
    sprite, logged = on_control
    assert (sprite.run("cat").stdout, sprite.run("wc", "-c").stdout.strip()) == ("", "0")
    with sprite.command("head", "-c", "3", stdin=False) as head:
        output = b"".join(chunk.data for chunk in head)
    assert (output, head.exit_code) == (b"", 0)
    assert logged.sockets(sprite.name) == (1, 1)


def test_a_refused_command_raises_as_over_its_own_socket(
        on_control: tuple[Sprite, LoggedServer]) -> None:
    """The server refuses it before starting anything (op.error): the direct socket then
    gives the same one-line error as without control, and the control socket serves on."""
    sprite, logged = on_control
    assert sprite.run("true").exit_code == 0
    with pytest.raises(InvalidRequest, match="invalid env entry '=x'"):
        sprite.run("true", env={"": "x"})
    assert sprite.run("echo", "next").stdout == "next\n"
    assert logged.sockets(sprite.name) == (1, 2)


def test_streaming_tty_resize_and_session_id(on_control: tuple[Sprite, LoggedServer]) -> None:
    sprite, logged = on_control
    with sprite.command("sh", "-c", "echo first; read line; echo got $line") as cmd:
        chunks = iter(cmd)
        assert next(chunks).data == b"first\n"
        assert cmd.session_id in {s.id for s in sprite.list_sessions()}
        cmd.write("abc\n")
        assert b"".join(c.data for c in chunks) == b"got abc\n"
    tty = sprite.command("sh", "-c", "read x; stty size", tty=True, size=(100, 30))
    tty.resize(120, 40)
    tty.write("\n")
    assert b"40 120" in b"".join(c.data for c in tty) and tty.wait() == 0
    assert logged.sockets(sprite.name) == (1, 1)


def test_signal_kill_and_detach(on_control: tuple[Sprite, LoggedServer]) -> None:
    sprite, logged = on_control
    sleeper = sprite.command("sleep", "30", stdin=False)
    sleeper.signal("TERM")
    assert sleeper.wait() == 143
    owned = sprite.command("sleep", "30")
    owned.close()
    assert owned.exit_code == 137
    detached = sprite.command("sleep", "30", max_run_after_disconnect=0)
    sid = detached.session_id
    detached.detach()
    assert sid in {s.id for s in sprite.list_sessions()}
    assert sprite.run("echo", "after detach").stdout == "after detach\n"
    list(sprite.kill_session(sid, signal="KILL", timeout=5))
    assert logged.sockets(sprite.name) == (1, 1)


def test_ctrl_c_sends_sigint_then_sigkill_and_the_socket_serves_on(
        on_control: tuple[Sprite, LoggedServer]) -> None:
    sprite, logged = on_control
    timer = interrupt_once_running(Command._receive.__code__)
    with pytest.raises(KeyboardInterrupt):
        sprite.run("sleep", "30")
    timer.join()
    stubborn = sprite.command("sh", "-c", "trap '' INT; echo ready; sleep 30", stdin=False)
    assert next(iter(stubborn)).data == b"ready\n"
    timer = interrupt_once_running(Command._receive.__code__)
    with pytest.raises(KeyboardInterrupt):
        stubborn.wait()
    timer.join()
    assert stubborn.exit_code == 137
    assert sprite.list_sessions() == []
    assert sprite.run("echo", "still here").stdout == "still here\n"
    assert logged.sockets(sprite.name) == (1, 1)


def test_threads_running_commands_at_once_each_get_a_socket(
        on_control: tuple[Sprite, LoggedServer]) -> None:
    sprite, logged = on_control
    together = threading.Barrier(4)

    def commands(worker: int) -> list[str]:
        with sprite.command("cat") as first:  # all four hold a connection at once
            together.wait(timeout=60)
            first.write(f"{worker}\n")
            first.close_stdin()
            outputs = [b"".join(chunk.data for chunk in first).decode()]
        return outputs + [sprite.run("sh", "-c", f"echo {worker}-{i}").stdout
                          for i in range(4)]

    with ThreadPoolExecutor(4) as pool:
        outputs = list(pool.map(commands, range(4)))
    assert outputs == [[f"{w}\n"] + [f"{w}-{i}\n" for i in range(4)] for w in range(4)]
    assert logged.sockets(sprite.name) == (4, 1)


def _connections_to(port: int) -> int:
    """This process's established TCP connections to ``port`` (from /proc: what the
    operating system holds open, whoever opened it)."""
    own = {os.readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")
           if os.path.islink(f"/proc/self/fd/{fd}")}
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if remote_port == port and fields[3] == "01" and f"socket:[{fields[9]}]" in own:
                    count += 1
    return count


def test_closing_the_client_closes_its_control_sockets(logged: LoggedServer) -> None:
    name = f"c-{uuid.uuid4().hex[:10]}"
    port = int(logged.server.url.rsplit(":", 1)[1])
    client = SpritesClient(logged.server.token, logged.server.url)
    client.create_sprite(name)
    sprite = client.sprite(name)
    sprite.run("true")
    before = _connections_to(port)
    sprite.run("true")
    assert _connections_to(port) == before + 1  # the idle control socket
    client.close()
    assert _connections_to(port) == 0
    assert logged.sockets(name) == (1, 1)
    with SpritesClient(logged.server.token, logged.server.url) as other:
        other.delete_sprite(name)


def test_an_idle_control_socket_closes_by_itself(logged: LoggedServer) -> None:
    """After :data:`IDLE_CLOSE` seconds unused (this test waits that long); the next
    command opens another."""
    name = f"c-{uuid.uuid4().hex[:10]}"
    port = int(logged.server.url.rsplit(":", 1)[1])
    with logged.server.http() as http:
        http.post("/v1/sprites", json={"name": name}).raise_for_status()
    with SpritesClient(logged.server.token, logged.server.url) as client:  # exec only
        sprite = client.sprite(name)
        sprite.run("true")
        sprite.run("true")
        assert _connections_to(port) == 1
        deadline = time.monotonic() + IDLE_CLOSE + 30
        while _connections_to(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _connections_to(port) == 0
        assert sprite.run("echo", "later").stdout == "later\n"
        client.delete_sprite(name)
    assert logged.sockets(name) == (2, 1)


def test_a_server_restart_kills_the_pooled_socket_and_the_next_command_still_works(
        tmp_path: Path) -> None:
    logged = LoggedServer(tmp_path)
    try:
        with SpritesClient(logged.server.token, logged.server.url) as client:
            client.create_sprite("restarted")
            sprite = client.sprite("restarted")
            sprite.run("true")
            assert sprite.run("echo", "before").stdout == "before\n"
            logged.restart()
            assert sprite.run("echo", "after").stdout == "after\n"
            assert sprite.run("echo", "again").stdout == "again\n"
        assert logged.sockets("restarted") == (2, 1)
    finally:
        logged.server.stop()
