"""TCP through the proxy socket, and the version probe."""

from __future__ import annotations

import socket
import time

import pytest

from sprites_jupyter.client import ConnectionFailed, PortConnection, Sprite


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
