"""The client's WebSockets through an HTTP proxy (``CONNECT``), as named by the
environment for a remote API. The proxy here is a small real one in a thread, tunnelling
to the local server (which the client reaches directly: it is on loopback)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from sprites_jupyter.client.errors import ProtocolError
from sprites_jupyter.client.websocket import _proxy_for
from sprites_jupyter.client.ws_connection import connect
from tests.conftest import LocalServer


class ConnectProxy:
    """Answers one ``CONNECT host:port`` per connection with 200, then relays bytes."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.asked: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._tunnel, args=(client,), daemon=True).start()

    def _tunnel(self, client: socket.socket) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += client.recv(4096)
        target = request.split(b" ")[1].decode()
        self.asked.append(target)
        host, port = target.rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._copy, args=(source, sink), daemon=True).start()

    @staticmethod
    def _copy(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy() -> Iterator[ConnectProxy]:
    running = ConnectProxy()
    yield running
    running.close()


def test_an_exec_websocket_goes_through_the_proxy(server: LocalServer, sprite: str,
                                                  proxy: ConnectProxy) -> None:
    url = f"{server.ws_url}/v1/sprites/{sprite}/exec?cmd=echo&cmd=through&stdin=false"
    with connect(url, headers=list(server.headers.items()), user_agent="test",
                 tls=None, proxy=proxy.address, open_timeout=60, ping_interval=None,
                 ping_timeout=45, close_timeout=2, max_size=1 << 24, max_queue=64) as ws:
        received = b""
        while b"through" not in received:
            message = ws.recv(timeout=30)
            if isinstance(message, bytes) and message[:1] == b"\x01":
                received += message[1:]
    host_port = server.url.removeprefix("http://")
    assert proxy.asked == [host_port]


def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                 "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert _proxy_for("wss://api.example.test/v1/sprites/a/exec") is None
    monkeypatch.setenv("https_proxy", "http://proxy.example.test:3128")
    assert _proxy_for("wss://api.example.test/v1/x") == ("proxy.example.test", 3128)
    monkeypatch.setenv("no_proxy", "api.example.test")
    assert _proxy_for("wss://api.example.test/v1/x") is None
    monkeypatch.setenv("no_proxy", "")
    monkeypatch.setenv("https_proxy", "socks5://proxy.example.test:1080")
    with pytest.raises(ProtocolError, match="not an http:// proxy"):
        _proxy_for("wss://api.example.test/v1/x")
