"""Loopback servers the egress tests reach through a sprite's proxy, a local server whose
proxies map test names to them, and a DNS client.

``allowed.test`` / ``denied.test`` style names are mapped to these servers with the
proxy's test-only host overrides; there is no internet here.
"""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import socket
import socketserver
import ssl
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from sprites_jupyter.local.runtime.egress.resolver import TEST_HOSTS_ENV
from sprites_jupyter.local.testing import LocalServer, start_server


class _Hello(http.server.BaseHTTPRequestHandler):
    """``GET /bytes/N`` sends N bytes; anything else says which host and path it got."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path.startswith("/bytes/"):
            self._send_bytes(int(self.path.rsplit("/", 1)[1]))
            return
        body = f"hello from {self.headers['Host']} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_bytes(self, size: int) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        block = b"x" * (1 << 20)
        while size > 0:
            self.wfile.write(block[:size])
            size -= len(block)

    def log_message(self, *args: object) -> None:
        pass


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


class _Servers(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _HttpServers(http.server.ThreadingHTTPServer):
    daemon_threads = True


@dataclass
class Targets:
    """An HTTP server, an HTTPS server (with its CA file) and a TCP echo server."""

    http_port: int
    https_port: int
    echo_port: int
    ca_file: Path
    _servers: list[socketserver.BaseServer]

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


def _serve(server: socketserver.BaseServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


def egress_test_server(home: Path, hosts: str, args: Sequence[str] = ()) -> LocalServer:
    """A server of its own whose proxies resolve ``hosts`` (``name=ip`` pairs) with their
    test-only overrides; the test is skipped unless its sprites are sandboxed, as egress
    is only enforced there."""
    running = start_server(home, args=args, env={TEST_HOSTS_ENV: hosts})
    with running.http() as http:
        isolation = http.get("/v1/sprites").headers.get("sprite-local-isolation", "")
    if isolation != "sandbox":
        running.stop()
        pytest.skip(f"this local server runs sprites {isolation or 'unsandboxed'}: "
                    "egress is only enforced in sandboxed sprites")
    return running


def start_targets(directory: Path, tls_names: list[str]) -> Targets:
    """Start the servers; the HTTPS one has a throwaway certificate for ``tls_names``."""
    web = _HttpServers(("127.0.0.1", 0), _Hello)
    secure = _HttpServers(("127.0.0.1", 0), _Hello)
    cert, key = _throwaway_certificate(directory, tls_names)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    echo = _Servers(("127.0.0.1", 0), _Echo)
    for server in (web, secure, echo):
        _serve(server)
    return Targets(web.server_address[1], secure.server_address[1], echo.server_address[1],
                   cert, [web, secure, echo])


def _throwaway_certificate(directory: Path, names: list[str]) -> tuple[Path, Path]:
    """A self-signed certificate (its own CA) for ``names``, made with ``cryptography``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "target-cert.pem", directory / "target-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def dns_query(port: int, name: str, qtype: int = 1, host: str = "127.0.0.1",
              timeout: float = 10.0) -> tuple[int, list[str]]:
    """Ask ``host:port`` over UDP; the response code and the A/AAAA addresses."""
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    query = struct.pack("!HHHHHH", 0x5150, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack(
        "!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(timeout)
        client.sendto(query, (host, port))
        data = client.recv(4096)
    (ident, flags, _, answers, _, _) = struct.unpack_from("!HHHHHH", data)
    assert ident == 0x5150 and flags & 0x8000
    offset, addresses = len(query), []
    for _ in range(answers):
        rtype, _, _, length = struct.unpack_from("!HHIH", data, offset + 2)
        rdata = data[offset + 12:offset + 12 + length]
        addresses.append(str(ipaddress.ip_address(rdata)) if rtype in (1, 28) else "")
        offset += 12 + length
    return flags & 0x000F, addresses
