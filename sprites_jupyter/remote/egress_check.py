"""Ask the sprite's egress proxy whether it lets a connection through, from inside it.

Run inside the sprite as ``python3 - HOST PORT`` with this file on stdin (standard
library only). The proxy named by ``https_proxy`` is asked to ``CONNECT HOST:PORT``,
as pip, curl and git ask it, and the connection is closed at once: its answer is the
verdict those programs get, resolution and the server's private-address rule
included. Writes one JSON object: ``{"proxy": null}`` when the sprite has no proxy,
else ``{"status": N, "reason": STATUS_LINE_REASON, "detail": FIRST_BODY_LINE}``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from urllib.parse import urlsplit

TIMEOUT = 20.0
HEAD_LIMIT = 65536


def proxy_address() -> tuple[str, int] | None:
    for name in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        value = os.environ.get(name)
        if value:
            parts = urlsplit(value if "://" in value else "http://" + value)
            if parts.hostname:
                return parts.hostname, parts.port or 80
    return None


def ask(proxy: tuple[str, int], host: str, port: int) -> dict:
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with socket.create_connection(proxy, timeout=TIMEOUT) as connection:
        connection.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < HEAD_LIMIT:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
        head, _, body = answer.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode("utf-8", "replace")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != 200:
            connection.settimeout(2.0)
            try:
                while b"\n" not in body and len(body) < HEAD_LIMIT:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    body += chunk
            except OSError:
                pass
    detail = body.decode("utf-8", "replace").strip().splitlines()
    return {"status": status, "reason": parts[2] if len(parts) > 2 else "",
            "detail": detail[0] if detail and status != 200 else ""}


def main(argv: list) -> int:
    proxy = proxy_address()
    if proxy is None:
        print(json.dumps({"proxy": None}))
        return 0
    try:
        print(json.dumps(ask(proxy, argv[1], int(argv[2]))))
    except OSError as error:
        print(json.dumps({"status": 0, "reason": "", "detail": f"the proxy did not answer: "
                                                             f"{error}"}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
