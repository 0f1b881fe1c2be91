"""The egress bridge: runs inside a sandboxed sprite, in its network namespace.

It binds the sprite's proxy port (TCP) and DNS port (UDP) on the namespace's loopback
and hands both sockets to the server over the unix socket it inherited (its fd
``FD``). The server then accepts and answers on them itself (a socket stays in the
namespace it was made in), so no byte is copied through this process. It exits when
the server lets go.

Standard library only; run as ``python3 bridge.py FD [--port P] [--dns-port D]`` (or
with its source as ``-c``).
"""

from __future__ import annotations

import argparse
import socket
import sys

GREETING = b"sprites-egress-bridge/1"
PROXY_PORT = 3128
DNS_PORT = 53


def bind_sockets(port: int, dns_port: int) -> tuple[socket.socket, socket.socket]:
    """The proxy's listening TCP socket and the DNS UDP socket, on 127.0.0.1."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(512)
    resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    resolver.bind(("127.0.0.1", dns_port))
    return listener, resolver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="egress-bridge")
    parser.add_argument("fd", type=int, help="the inherited unix socket to the server")
    parser.add_argument("--port", type=int, default=PROXY_PORT)
    parser.add_argument("--dns-port", type=int, default=DNS_PORT)
    args = parser.parse_args(argv)
    server = socket.socket(fileno=args.fd)
    try:
        listener, resolver = bind_sockets(args.port, args.dns_port)
    except OSError as error:
        print(f"egress bridge: cannot bind 127.0.0.1:{args.port}/{args.dns_port}: {error}",
              file=sys.stderr)
        return 1
    with server:
        try:
            socket.send_fds(server, [GREETING], [listener.fileno(), resolver.fileno()])
            listener.close()
            resolver.close()
            if server.recv(1) != b"1":
                print("egress bridge: the server refused the sockets", file=sys.stderr)
                return 1
            print("egress bridge: ready", flush=True)
            server.recv(1)
        except OSError as error:
            print(f"egress bridge: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
