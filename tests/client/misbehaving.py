"""A tiny purpose-built misbehaving server, for faults a healthy server never produces.

Each route is a function that writes raw bytes to the socket, so a test can send a
malformed NDJSON line, cut a chunked stream mid-way, or answer with an HTML page.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from websockets.sync.server import Server, ServerConnection, serve

Route = Callable[[BaseHTTPRequestHandler], None]


def ndjson_chunks(*chunks: bytes, finish: bool = True) -> Route:
    """A chunked ``application/x-ndjson`` response; ``finish=False`` cuts it mid-way."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                            b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        for chunk in chunks:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            handler.wfile.flush()
        if finish:
            handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
        handler.close_connection = True

    return respond


def raw(status: str, content_type: str, body: bytes) -> Route:
    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                            b"Connection: close\r\n\r\n%s"
                            % (status.encode(), content_type.encode(), len(body), body))
        handler.close_connection = True

    return respond


def json_answer(status: str, value: object, headers: dict[str, str] | None = None) -> Route:
    """A JSON response (with extra ``headers``), as the real service answers."""
    body = json.dumps(value).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.wfile.write(b"HTTP/1.1 %s\r\nContent-Type: application/json\r\n%s"
                            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                            % (status.encode(), extra, len(body), body))
        handler.close_connection = True

    return respond


@dataclass
class Received:
    """One request as the server got it."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@contextmanager
def http_server(routes: dict[tuple[str, str], Route],
                received: list[Received] | None = None) -> Iterator[str]:
    """Serve ``routes`` (keyed by method and path) on a free port; yield the base URL.

    Every request is appended to ``received`` when given.
    """

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            if received is not None:
                received.append(Received(self.command, path,
                                         parse_qs(query, keep_blank_values=True), body))
            route = routes.get((self.command, path))
            (route or raw("404 Not Found", "text/plain", b"no such route"))(self)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def ws_server(handler: Callable[[ServerConnection], None], *,
              process_request: Callable[..., object] | None = None) -> Iterator[str]:
    """A WebSocket server running ``handler`` for each connection; yield the http:// URL.

    ``process_request(connection, request)`` may refuse an upgrade (see ``websockets``).
    """
    server: Server = serve(handler, "127.0.0.1", 0, process_request=process_request)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    finally:
        server.shutdown()
        thread.join()
