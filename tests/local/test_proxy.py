"""The TCP proxy socket against the real server and a real TCP echo server (section 10).

The echo server runs inside the sprite (its own network namespace when sandboxed): the
proxy reaches the sprite's ports, not the host's.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.conftest import LocalServer
from tests.local.exec_ws import RECV_TIMEOUT, open_exec, session_info

TIMEOUT = 60


ECHO = """
import socket, threading
def serve(conn):
    with conn:
        while data := conn.recv(65536):
            if data == b"quit":
                conn.sendall(b"bye")
                return
            conn.sendall(data)
listener = socket.create_server(("127.0.0.1", 0))
print(listener.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
"""


@pytest.fixture
def echo_port(server: LocalServer, sprite: str) -> Iterator[int]:
    """A TCP echo server on the sprite's 127.0.0.1 that answers ``quit`` with ``bye``."""
    with open_exec(server, sprite, ["python3", "-c", ECHO]) as ws:
        session_info(ws)
        yield int(ws.recv(timeout=RECV_TIMEOUT)[1:])


def open_proxy(server: LocalServer, sprite: str) -> ClientConnection:
    return connect(f"{server.ws_url}/v1/sprites/{sprite}/proxy",
                   additional_headers=server.headers)


def close_code(ws: ClientConnection) -> int | None:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=TIMEOUT)
    return closed.value.rcvd.code if closed.value.rcvd else None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", None])
def test_relays_bytes_both_ways(server: LocalServer, sprite: str, echo_port: int,
                                host: str | None) -> None:
    init = {"port": echo_port} if host is None else {"host": host, "port": echo_port}
    with open_proxy(server, sprite) as ws:
        ws.send(json.dumps(init))
        reply = json.loads(ws.recv(timeout=TIMEOUT))
        assert reply == {"status": "connected", "target": f"{host or 'localhost'}:{echo_port}"}
        payload = bytes(range(256)) * 400
        ws.send(payload)
        echoed = b""
        while len(echoed) < len(payload):
            echoed += ws.recv(timeout=TIMEOUT)
        assert echoed == payload


def test_target_closing_closes_the_socket_with_1000(server: LocalServer, sprite: str,
                                                    echo_port: int) -> None:
    with open_proxy(server, sprite) as ws:
        ws.send(json.dumps({"host": "127.0.0.1", "port": echo_port}))
        assert json.loads(ws.recv(timeout=TIMEOUT))["status"] == "connected"
        ws.send(b"quit")
        assert ws.recv(timeout=TIMEOUT) == b"bye"
        assert close_code(ws) == 1000


@pytest.mark.parametrize("init", [
    b'{"host": "127.0.0.1", "port": 80}',
    "not json",
    json.dumps(["127.0.0.1", 80]),
    json.dumps({"host": "127.0.0.1", "port": 0}),
    json.dumps({"host": "127.0.0.1", "port": 70000}),
    json.dumps({"host": "127.0.0.1", "port": "80"}),
    json.dumps({"host": "example.com", "port": 80}),
])
def test_bad_initialisation_closes_with_1003(server: LocalServer, sprite: str,
                                             init: str | bytes) -> None:
    with open_proxy(server, sprite) as ws:
        ws.send(init)
        assert close_code(ws) == 1003


def test_dial_failure_closes_with_1011(server: LocalServer, sprite: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    with open_proxy(server, sprite) as ws:
        ws.send(json.dumps({"host": "127.0.0.1", "port": free_port}))
        assert close_code(ws) == 1011


def test_unknown_sprite_is_refused_at_the_handshake(server: LocalServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        open_proxy(server, "no-such-sprite")
    assert refused.value.response.status_code == 404
