"""TCP through the proxy socket, and the version probe."""

from __future__ import annotations

import hashlib
import random
import threading
import time

import pytest

from sprites_jupyter.client import ConnectionFailed, PortConnection, Sprite
from tests.sprite_apps import ECHO, free_port


def _connect(sp: Sprite, port: int) -> PortConnection:
    """A connection to ``port`` once the app the test started there listens (its Python
    can take seconds to start on a loaded machine)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            return sp.open_port(port)
        except ConnectionFailed:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listens on {port}") from None
            time.sleep(0.05)


def test_http_through_the_proxy(sp: Sprite) -> None:
    port = free_port()
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
        sp.open_port(free_port())
    with pytest.raises(ValueError, match="port"):
        sp.open_port(70000)


def test_server_version(sp: Sprite) -> None:
    version = sp.server_version()
    assert version and version.lstrip("v")[0].isdigit()




PIECE = 256 * 1024
SEND_CAP = 1024 * 1024 * 1024


class _Flood:
    """Sends seeded random pieces until told to stop: the sha256 and count of all sent."""

    def __init__(self, connection: PortConnection) -> None:
        self.connection = connection
        self.sent = 0
        self.digest = hashlib.sha256()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._send, daemon=True)
        self.thread.start()

    def _send(self) -> None:
        source = random.Random(7)
        while not self.stop.is_set() and self.sent < SEND_CAP:
            piece = source.randbytes(PIECE)
            self.connection.send(piece)
            self.digest.update(piece)
            self.sent += len(piece)

    def wait_until_stalled(self) -> None:
        """Until no piece has gone for a second: every buffer on the way is full."""
        last, since = -1, time.monotonic()
        while time.monotonic() - since < 1.0:
            assert self.sent < SEND_CAP, "1 GiB went without a stall"
            if self.sent != last:
                last, since = self.sent, time.monotonic()
            time.sleep(0.05)


def test_a_send_blocked_by_a_full_peer_never_stops_the_receiving_side(sp: Sprite) -> None:
    """An echo peer sent more than every buffer on the way holds stops reading until its
    echoes are read; the sender blocks, and reading the echoes must then let everything
    through (a send that held the connection's lock while blocked made the receiving
    side wait for it: a deadlock)."""
    port = free_port()
    with (sp.command("python3", "-c", ECHO, str(port), stdin=False),
          _connect(sp, port) as connection):
        flood = _Flood(connection)
        flood.wait_until_stalled()
        flood.stop.set()
        received = hashlib.sha256()
        size = 0
        deadline = time.monotonic() + 120
        while flood.thread.is_alive() or size < flood.sent:
            assert time.monotonic() < deadline, f"stuck after {size} of {flood.sent} bytes"
            try:
                chunk = connection.recv(timeout=1)
            except TimeoutError:
                continue  # the sender may still be finishing its last piece
            assert chunk, f"the connection ended after {size} bytes"
            received.update(chunk)
            size += len(chunk)
        assert size == flood.sent
    assert received.hexdigest() == flood.digest.hexdigest()
