"""Run inside a sprite (or a test network namespace) to see what its network allows.

Standard library only. Each subcommand prints one JSON object:
``fetch URL [CAFILE]`` (urllib, honouring the proxy variables), ``dns NAME`` (a raw
UDP query to the nameserver in /etc/resolv.conf), ``resolve NAME`` (getaddrinfo),
``connect HOST PORT`` (a direct TCP connection, ignoring any proxy),
``tunnel HOST PORT`` (a CONNECT tunnel through $HTTPS_PROXY to an echo server, kept
open until a line on stdin, then echoed again).
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import sys
import urllib.error
import urllib.parse
import urllib.request


def fetch(url: str, cafile: str | None = None) -> dict[str, object]:
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as response:
            return {"status": response.status, "body": response.read().decode()}
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read().decode()}
    except urllib.error.URLError as error:
        return {"status": 0, "body": str(error.reason)}


def nameserver() -> str:
    with open("/etc/resolv.conf") as handle:
        for line in handle:
            if line.startswith("nameserver"):
                return line.split()[1]
    return "127.0.0.1"


def dns(name: str) -> dict[str, object]:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    query = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(10)
        client.sendto(query, (nameserver(), 53))
        answer = client.recv(4096)
    return {"rcode": answer[3] & 15, "answers": struct.unpack_from("!H", answer, 6)[0]}


def resolve(name: str) -> dict[str, object]:
    try:
        infos = socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        return {"error": str(error)}
    return {"addresses": sorted({info[4][0] for info in infos})}


def connect(host: str, port: str) -> dict[str, object]:
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as error:
        return {"connected": False, "error": str(error)}
    return {"connected": True}


def tunnel(host: str, port: str) -> dict[str, object]:
    proxy = urllib.parse.urlsplit(os.environ["HTTPS_PROXY"])
    with socket.create_connection((proxy.hostname, proxy.port), timeout=30) as link:
        link.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = link.recv(4096)
        link.sendall(b"first")
        first = link.recv(4096)
        print(json.dumps({"open": head.split(b"\r\n")[0].decode(), "echo": first.decode()}),
              flush=True)
        sys.stdin.readline()
        try:
            link.sendall(b"second")
            second = link.recv(4096)
        except OSError as error:
            return {"after": f"error: {error}"}
    return {"after": second.decode() or "closed"}


COMMANDS = {"fetch": fetch, "dns": dns, "resolve": resolve, "connect": connect,
            "tunnel": tunnel}

if __name__ == "__main__":
    print(json.dumps(COMMANDS[sys.argv[1]](*sys.argv[2:])), flush=True)
