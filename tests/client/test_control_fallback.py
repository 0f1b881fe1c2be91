"""When the control connection is not there or breaks, commands take the direct exec
socket without the user seeing it. A real local server always offers control, so the
refusals come from fault proxies in front of it (what a proxy between a user and the
service may do) and from a fault server that never offered it."""

from __future__ import annotations

import contextlib
import io
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from websockets.sync.server import ServerConnection

from sprites_jupyter.client import SpritesClient
from sprites_jupyter.local.testing import LocalServer

from .misbehaving import ws_server

TOKEN = "test-token"


class FaultProxy:
    """A TCP proxy to the local server that records each request line and treats
    ``/control`` upgrades as ``mode`` says: ``refuse`` them with a 404, ``cut`` the
    connection when the client starts its operation number ``cut_at`` on it."""

    def __init__(self, target: tuple[str, int], mode: str, cut_at: int = 1) -> None:
        self.target = target
        self.mode = mode
        self.cut_at = cut_at
        self.requests: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.sockets: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def paths(self, kind: str) -> int:
        return sum(f"/{kind}" in line for line in self.requests)

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self.listener.accept()
                self.sockets.append(client)
                threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        reader = client.makefile("rb")
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = reader.readline()
            if not line:
                client.close()
                return
            head += line
        request_line = head.split(b"\r\n", 1)[0].decode()
        self.requests.append(request_line)
        control = "/control " in request_line
        if control and self.mode == "refuse":
            client.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
                           b"Content-Length: 19\r\nConnection: close\r\n\r\n"
                           b"404 page not found\n")
            client.close()
            return
        upstream = socket.create_connection(self.target)
        self.sockets.append(upstream)
        upstream.sendall(head)
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        if control:
            self._cut_at_operation(reader, upstream, client)
        else:
            _pump_file(reader, upstream)

    def _cut_at_operation(self, reader: io.BufferedReader, upstream: socket.socket,
                          client: socket.socket) -> None:
        starts = 0
        with contextlib.suppress(OSError, ValueError):
            while (frame := _read_frame(reader)) is not None:
                raw, payload = frame
                if payload.startswith(b"control:") and b'"op.start"' in payload:
                    starts += 1
                    if starts == self.cut_at:
                        break
                upstream.sendall(raw)
        for end in (client, upstream):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.listener.close()
        for each in self.sockets:
            with contextlib.suppress(OSError):
                each.close()


def _read_frame(reader: io.BufferedReader) -> tuple[bytes, bytes] | None:
    """One masked client frame: its bytes as sent, and its unmasked payload."""
    head = reader.read(2)
    if len(head) < 2:
        return None
    raw = head
    size = head[1] & 0x7F
    if size in (126, 127):
        extra = reader.read(2 if size == 126 else 8)
        raw += extra
        size = struct.unpack(">H" if len(extra) == 2 else ">Q", extra)[0]
    mask = reader.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = reader.read(size)
    raw += (mask if head[1] & 0x80 else b"") + data
    return raw, bytes(byte ^ mask[i % 4] for i, byte in enumerate(data))


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _pump_file(source: io.BufferedReader, sink: socket.socket) -> None:
    with contextlib.suppress(OSError, ValueError):
        while data := source.read1(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


@contextmanager
def fault_proxy(server: LocalServer, mode: str, cut_at: int = 1) -> Iterator[FaultProxy]:
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    proxy = FaultProxy((host, int(port)), mode, cut_at)
    proxy.thread.start()
    try:
        yield proxy
    finally:
        proxy.close()


def _run_four(url: str, token: str, sprite: str) -> list[str]:
    with SpritesClient(token, url) as client:
        handle = client.sprite(sprite)
        return [handle.run("sh", "-c", f"echo {i}; exit {i}").stdout for i in range(4)]


def test_fault_proxy_refusing_control_gets_the_direct_socket_from_then_on(
        server: LocalServer, sprite: str) -> None:
    with fault_proxy(server, "refuse") as proxy:
        assert _run_four(proxy.url, server.token, sprite) == [f"{i}\n" for i in range(4)]
    assert (proxy.paths("control"), proxy.paths("exec")) == (1, 4)


def test_fault_proxy_cutting_a_new_control_socket_gets_the_direct_socket_from_then_on(
        server: LocalServer, sprite: str) -> None:
    with fault_proxy(server, "cut") as proxy:
        assert _run_four(proxy.url, server.token, sprite) == [f"{i}\n" for i in range(4)]
    assert (proxy.paths("control"), proxy.paths("exec")) == (1, 4)


def test_fault_proxy_cutting_a_pooled_control_socket_falls_back_once(
        server: LocalServer, sprite: str) -> None:
    """The second operation on the pooled socket finds it cut: that command takes the
    direct socket, and the next one dials a new control socket."""
    with fault_proxy(server, "cut", cut_at=2) as proxy:
        assert _run_four(proxy.url, server.token, sprite) == [f"{i}\n" for i in range(4)]
    assert (proxy.paths("control"), proxy.paths("exec")) == (2, 2)


def test_fault_server_without_the_control_capability_never_sees_a_control_request() -> None:
    paths: list[str] = []

    def note(connection: ServerConnection, request) -> None:
        paths.append(request.path)

    def handler(connection: ServerConnection) -> None:
        connection.send(b"\x01hi\n")
        connection.send(b"\x03\x00")
        connection.close()

    with ws_server(handler, process_request=note) as url, SpritesClient(TOKEN, url) as client:
        outputs = [client.sprite("s").run("echo", "hi").stdout for _ in range(3)]
    assert outputs == ["hi\n"] * 3
    assert [path.split("?")[0] for path in paths] == ["/v1/sprites/s/exec"] * 3
