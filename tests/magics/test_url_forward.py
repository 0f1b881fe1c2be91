"""%sprite forward, forwards and forward stop: a TCP echo service in the sprite reached
through a forwarded local port, many connections at once, bytes intact, port freed."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from tests.sprite_apps import ECHO, free_port, start_service

TIMEOUT = 60


def start_echo(http, sprite: str) -> int:
    port = free_port()
    start_service(http, sprite, "echo", ["python3", "-c", ECHO, str(port)])
    return port


def connect_when_echoing(local_port: int) -> socket.socket:
    """A connection through the forward, once the echo service in the sprite answers."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        sock = socket.create_connection(("127.0.0.1", local_port), timeout=TIMEOUT)
        try:
            sock.sendall(b"ready?")
            if recv_exactly(sock, 6) == b"ready?":
                return sock
        except OSError:
            pass
        sock.close()
        if time.monotonic() > deadline:
            raise AssertionError("the echo service never answered through the forward")
        time.sleep(0.2)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def wait_for(predicate, timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_forward_carries_50_connections_at_once_then_stops(ip, http, current, capsys):
    port = start_echo(http, current)
    local = free_port()
    ip.ok(f"%sprite forward {port} --local {local}")
    assert (f"Forwarding localhost:{local} to port {port} in {current}"
            in capsys.readouterr().out)
    connect_when_echoing(local).close()

    sockets = [socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT)
               for _ in range(50)]
    try:
        for number, sock in enumerate(sockets):
            sock.sendall(f"connection {number:02d}".encode())
        for number, sock in enumerate(sockets):
            assert recv_exactly(sock, 13) == f"connection {number:02d}".encode()
        frame = ip.ok("%sprite forwards")
        assert frame.index.tolist() == [local]
        assert frame.loc[local, "sprite"] == current and frame.loc[local, "remote"] == port
        assert frame.loc[local, "connections"] == 50
        assert frame.loc[local, "bytes"] >= 50 * 13 * 2
    finally:
        for sock in sockets:
            sock.close()
    assert wait_for(lambda: ip.ok("%sprite forwards").loc[local, "connections"] == 0)

    ip.ok(f"%sprite forward stop {port}")
    assert f"Stopped forwarding localhost:{local}" in capsys.readouterr().out
    assert ip.ok("%sprite forwards").empty
    assert not listening(local)
    journal = ip.ok("%sprite history")
    assert {"forward", "forward stop"} <= set(journal["operation"])
    with socket.create_server(("127.0.0.1", local)):
        pass  # the port is free again


def test_forward_carries_100_megabytes_both_ways_intact(ip, http, current):
    port = start_echo(http, current)
    ip.ok(f"%sprite forward {port}")
    local = int(ip.ok("%sprite forwards").index[0])
    payload = random.Random(12).randbytes(100 * 1024 * 1024)
    sock = connect_when_echoing(local)
    received = hashlib.sha256()
    size = 0

    def send_all() -> None:
        view = memoryview(payload)
        for start in range(0, len(payload), 1 << 20):
            sock.sendall(view[start:start + (1 << 20)])

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    with sock:
        while size < len(payload):
            chunk = sock.recv(1 << 20)
            assert chunk, f"the connection ended after {size} bytes"
            received.update(chunk)
            size += len(chunk)
        sender.join(TIMEOUT)
    assert received.hexdigest() == hashlib.sha256(payload).hexdigest()
    assert ip.ok("%sprite forwards").iloc[0]["bytes"] >= 2 * len(payload)
    ip.ok("%sprite forward stop --all")


def test_forward_stops_while_a_connection_is_stuck_sending(ip, http, current):
    """A client that sends without reading fills every buffer up to the echo in the sprite,
    so the forward's upstream pump blocks in a send; stopping must still end it."""
    port = start_echo(http, current)
    ip.ok(f"%sprite forward {port}")
    local = int(ip.ok("%sprite forwards").index[0])
    sock = connect_when_echoing(local)
    sock.settimeout(1)
    sent = 0
    with sock:
        try:
            while sent < 512 << 20:  # until the buffers are full (the send times out)
                sent += sock.send(b"x" * (1 << 20))
        except TimeoutError:
            pass
        stopper = threading.Thread(target=ip.ok, args=("%sprite forward stop --all",),
                                   daemon=True)
        stopper.start()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive(), "forward stop hung on a connection stuck sending"
    assert not listening(local)


def test_forward_reports_connections_nothing_answers(ip, current):
    port = free_port()
    ip.ok(f"%sprite forward {port}")
    local = int(ip.ok("%sprite forwards").index[0])
    with socket.create_connection(("127.0.0.1", local), timeout=TIMEOUT) as sock:
        assert sock.recv(10) == b""  # closed: nothing listens on that port in the sprite
    assert wait_for(lambda: ip.ok("%sprite forwards").loc[local, "error"] != "")
    assert "Failed to connect" in ip.ok("%sprite forwards").loc[local, "error"]


def test_forward_usage_errors(ip, current):
    assert "must be a port number" in ip.fails("%sprite forward http")
    assert "must be a port number" in ip.fails("%sprite forward 0")
    assert "give the sprite's PORT, or --all" in ip.fails("%sprite forward stop")
    assert "No forward of port 4444" in ip.fails("%sprite forward stop 4444")
    assert "give one port to forward" in ip.fails("%sprite forward 80 81")
    assert "--local must be from 1 to 65535" in ip.fails("%sprite forward 80 --local 70000")
    assert "not found" in ip.fails("%sprite forward 80 -s no-such-sprite")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        used = taken.getsockname()[1]
        message = ip.fails(f"%sprite forward 80 --local {used}")
    assert f"Cannot listen on localhost:{used}" in message and "--local" in message
    assert "Stopped 0 forwards" in run_and_capture(ip, "%sprite forward stop --all")


def run_and_capture(ip, line: str) -> str:
    from IPython.utils.capture import capture_output

    with capture_output() as captured:
        ip.ok(line)
    return captured.stdout


def test_forwards_end_when_the_extension_is_unloaded(ip, current):
    ip.ok(f"%sprite forward {free_port()}")
    local = int(ip.ok("%sprite forwards").index[0])
    assert listening(local)
    ip.shell.run_line_magic("unload_ext", "sprites_jupyter")
    assert not listening(local)
    ip.shell.run_line_magic("load_ext", "sprites_jupyter")


def test_forwards_end_cleanly_when_the_kernel_exits(server, sprite, tmp_path):
    """A separate Python runs IPython, forwards a port, holds a connection open and exits;
    an exit hook registered before the extension (so it runs after ours) checks that every
    forward thread has ended and the port is closed before the process goes."""
    script = tmp_path / "kernel.py"
    script.write_text(textwrap.dedent(f"""\
        import atexit, socket, threading
        from IPython.core.interactiveshell import InteractiveShell

        def check():
            alive = [t.name for t in threading.enumerate() if t.name.startswith("forward")]
            with socket.socket() as probe:
                still = probe.connect_ex(("127.0.0.1", local)) == 0
            print("threads:", alive, "listening:", still, flush=True)

        atexit.register(check)
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "sprites_jupyter")
        shell.run_line_magic("sprite", "use {sprite}")
        shell.run_line_magic("sprite", "forward 9 --local 0")
        local = int(shell.run_line_magic("sprite", "forwards").index[0])
        held = socket.create_connection(("127.0.0.1", local))
        print("forwarding", local, flush=True)
    """))
    env = {**os.environ, "SPRITES_API_URL": server.url, "SPRITES_TOKEN": server.token}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "forwarding" in done.stdout
    assert "threads: [] listening: False" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.parametrize("line", ["%sprite help forward", "%sprite help open"])
def test_help_lists_the_options(ip, line, capsys):
    ip.ok(line)
    out = capsys.readouterr().out
    assert "--local" in out or "--embed" in out


def test_forwards_frame_has_stable_columns_even_empty(ip):
    frame = ip.ok("%sprite forwards")
    assert frame.empty and frame.index.name == "local"
    assert list(frame.columns) == ["sprite", "remote", "connections", "bytes", "error"]
    assert {str(frame[c].dtype) for c in ("remote", "connections", "bytes")} == {"Int64"}
