"""A tiny web app the tests run as a service *inside* a sprite (standard library only).

    python3 web_echo_app.py PORT

- ``GET /`` a page whose script opens a WebSocket to ``/echo``, sends a line and shows
  the echo in ``#echo`` (the browser test reads it);
- ``GET /headers`` the request's headers as JSON (what the app was sent);
- ``GET /hang`` never answers; once its client hangs up, ``GET /ended`` counts it;
- ``POST /digest`` the length and SHA-256 of the request body, read as it arrives;
- a WebSocket upgrade on ``/refuse`` gets a 403; on any other path it echoes every text
  and binary message, answers pings, and picks the subprotocol ``echo`` when offered.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDED = 0
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PAGE = b"""<!doctype html><html><head><meta charset="utf-8"><title>web echo</title></head>
<body><h1 id="title">Hello from the sprite</h1><p id="echo">waiting</p>
<script>
const ws = new WebSocket(`ws://${location.host}/echo`);
ws.onopen = () => ws.send("ping from the browser");
ws.onmessage = (event) => { document.getElementById("echo").textContent = event.data; };
ws.onerror = () => { document.getElementById("echo").textContent = "websocket error"; };
</script></body></html>"""


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            if self.path == "/refuse":
                self._send(403, "text/plain", b"no websocket here\n")
            else:
                self._websocket()
        elif self.path == "/hang":
            self.rfile.read()  # until the proxy gives up on us and closes
            global ENDED
            ENDED += 1
        elif self.path == "/ended":
            self._send(200, "text/plain", str(ENDED).encode())
        elif self.path == "/headers":
            self._send(200, "application/json", json.dumps(dict(self.headers.items())).encode())
        elif self.path == "/":
            self._send(200, "text/html; charset=utf-8", PAGE)
        else:
            self._send(404, "text/plain", b"not found\n")

    def do_POST(self) -> None:
        digest, size = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while (length := int(self.rfile.readline().split(b";")[0], 16)) > 0:
                digest.update(self.rfile.read(length))
                size += length
                self.rfile.readline()
            self.rfile.readline()
        else:
            remaining = int(self.headers.get("Content-Length", 0))
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 16))
                digest.update(chunk)
                size += len(chunk)
                remaining -= len(chunk)
        answer = {"size": size, "sha256": digest.hexdigest()}
        self._send(200, "application/json", json.dumps(answer).encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _websocket(self) -> None:
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        offered = [p.strip() for p in self.headers.get("Sec-WebSocket-Protocol", "").split(",")]
        if "echo" in offered:
            self.send_header("Sec-WebSocket-Protocol", "echo")
        self.end_headers()
        self.wfile.flush()
        while (frame := self._read_frame()) is not None:
            opcode, payload = frame
            if opcode == 0x8:
                self._write_frame(0x8, payload[:2])
                return
            self._write_frame(0xA if opcode == 0x9 else opcode, payload)
        self.close_connection = True

    def _read_frame(self) -> tuple[int, bytes] | None:
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        opcode, length = head[0] & 0x0F, head[1] & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.rfile.read(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.rfile.read(8))
        mask = self.rfile.read(4) if head[1] & 0x80 else b""
        payload = self.rfile.read(length)
        return opcode, _unmask(payload, mask) if mask and payload else payload

    def _write_frame(self, opcode: int, payload: bytes) -> None:
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        self.wfile.write(head + payload)
        self.wfile.flush()


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
