"""Running small apps as services in a sprite, through the API, and reaching its URL."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx

WEB_ECHO_APP = Path(__file__).with_name("web_echo_app.py")
APP_PATH = "/home/sprite/web_echo_app.py"
DEADLINE = 60.0
ECHO = """
import socketserver, sys
class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(1 << 16):
            self.request.sendall(data)
socketserver.ThreadingTCPServer.daemon_threads = True
socketserver.ThreadingTCPServer.allow_reuse_address = True
socketserver.ThreadingTCPServer.request_queue_size = 128
socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), Echo).serve_forever()
"""
"""A TCP echo server (``python3 -c ECHO PORT``): every connection gets its bytes back."""


def free_port() -> int:
    """A TCP port nothing listens on right now (on the host, so also inside a sandbox)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_service(http: httpx.Client, sprite: str, name: str, argv: list[str], *,
                  http_port: int | None = None, dir: str | None = None) -> None:
    """Define and start a service through the API (``PUT …/services/NAME``)."""
    body: dict[str, object] = {"cmd": argv[0], "args": argv[1:], "http_port": http_port}
    if dir is not None:
        body["dir"] = dir
    response = http.put(f"/v1/sprites/{sprite}/services/{name}", json=body,
                        params={"duration": "0s"})
    assert response.status_code == 200, response.text


def start_web_echo(http: httpx.Client, sprite: str, port: int, *, http_port: bool = True,
                   name: str = "web") -> None:
    """Upload ``web_echo_app.py`` and run it as a service on ``port``."""
    response = http.put(f"/v1/sprites/{sprite}/fs/write", content=WEB_ECHO_APP.read_bytes(),
                        params={"path": APP_PATH, "mkdirParents": "true"})
    assert response.status_code == 200, response.text
    # relative to the service's directory, /home/sprite: without a sandbox, commands see
    # the host's / but start in the sprite's home
    start_service(http, sprite, name, ["python3", "web_echo_app.py", str(port)],
                  http_port=port if http_port else None)


def url_host(server_url: str, sprite: str) -> str:
    """The ``Host`` of the sprite's URL on the local server at ``server_url``."""
    return f"{sprite}.localhost:{httpx.URL(server_url).port}"


def url_client(server_url: str, sprite: str, **kwargs: object) -> httpx.Client:
    """An httpx client that talks to the sprite URL (``Host: NAME.localhost:PORT``)
    over the server's loopback address, so no name resolution is needed."""
    return httpx.Client(base_url=server_url, headers={"Host": url_host(server_url, sprite)},
                        timeout=30, **kwargs)  # type: ignore[arg-type]


def wait_until_serving(client: httpx.Client, path: str = "/", **kwargs: object
                       ) -> httpx.Response:
    """Poll ``path`` until the app answers with something other than a 502 (through a
    forwarded port, a connection dropped because nothing listens yet counts as no answer)."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            response = client.get(path, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
        else:
            if response.status_code != 502 or time.monotonic() > deadline:
                return response
        time.sleep(0.1)
