"""TCP through the proxy socket, and the version probe."""

from __future__ import annotations

import hashlib
import random
import socket
import threading
import time

import pytest

from sprites_jupyter.client import ConnectionFailed, PortConnection, Sprite
from tests.sprite_apps import ECHO


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _connect(sp: Sprite, port: int) -> PortConnection:
    for _ in range(200):
        try:
            return sp.open_port(port)
        except ConnectionFailed:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_http_through_the_proxy(sp: Sprite) -> None:
    port = _free_port()
    sp.write_file("index.html", "hello through the tunnel")
    with sp.command("python3", "-m", "http.server", str(port), "--bind", "127.0.0.1",
                    stdin=False):
        with _connect(sp, port) as connection:
            assert connection.target.endswith(str(port))
            connection.send(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
            received = b""
            while chunk := connection.recv(timeout=20):
                received += chunk
        assert received.startswith(b"HTTP/1.0 200")
        assert received.endswith(b"hello through the tunnel")


def test_nothing_listening_is_a_connection_failure(sp: Sprite) -> None:
    with pytest.raises(ConnectionFailed, match="connect to localhost"):
        sp.open_port(_free_port())
    with pytest.raises(ValueError, match="port"):
        sp.open_port(70000)


def test_server_version(sp: Sprite) -> None:
    version = sp.server_version()
    assert version and version.lstrip("v")[0].isdigit()




def _wait_until_stalled(progress: list[int], sender: threading.Thread) -> None:
    """Until the sender has made no progress for a second (or has finished)."""
    deadline = time.monotonic() + 120
    last, since = -1, time.monotonic()
    while sender.is_alive() and time.monotonic() < deadline:
        if progress[0] != last:
            last, since = progress[0], time.monotonic()
        elif time.monotonic() - since > 1.0:
            return
        time.sleep(0.05)


def test_a_send_blocked_by_a_full_peer_never_stops_the_receiving_side(sp: Sprite) -> None:
    """An echo peer that is sent more than every buffer on the way holds stops reading
    until its echoes are read; the sender blocks, and reading the echoes must then let
    everything through (a send that held the connection's lock while blocked made the
    receiving side wait for it: a deadlock)."""
    port = _free_port()
    payload = random.Random(7).randbytes(64 * 1024 * 1024)
    progress = [0]
    with (sp.command("python3", "-c", ECHO, str(port), stdin=False),
          _connect(sp, port) as connection):

        def send_all() -> None:
            view = memoryview(payload)
            for start in range(0, len(payload), 256 * 1024):
                connection.send(view[start:start + 256 * 1024])
                progress[0] = start + 256 * 1024

        sender = threading.Thread(target=send_all, daemon=True)
        sender.start()
        _wait_until_stalled(progress, sender)
        assert progress[0] < len(payload), "the buffers on the way held it all: no stall"
        received = hashlib.sha256()
        size = 0
        while size < len(payload):
            chunk = connection.recv(timeout=30)
            assert chunk, f"the connection ended after {size} bytes"
            received.update(chunk)
            size += len(chunk)
        sender.join(30)
        assert not sender.is_alive()
    assert received.hexdigest() == hashlib.sha256(payload).hexdigest()
