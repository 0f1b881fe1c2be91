"""The egress bridge: makes a sprite's proxy and DNS sockets inside its network namespace.

The server starts it on the host at each sandbox start. It joins the sprite's network
namespace (and the user namespace that owns it, so it may bind port 53), lets the
sprite's unprivileged processes bind ports below 1024 there (one helper process sets
the namespace up, so a sandbox start waits for one Python start, not two), binds the
proxy port (TCP) and DNS port (UDP) on the namespace's loopback, and hands both
sockets to the server over the unix socket it inherited (fd ``FD``), then exits. The
server accepts and answers on them itself (a socket stays in the namespace it was made
in), so no byte is ever copied through a bridge process.

Standard library only; run as ``python3 -I -S bridge.py FD [--netns PATH | --netns-later]``
(or with its source as ``-c``). Without either it binds where it runs. With
``--netns-later`` it is a spare started ahead: it waits, everything imported, for the
namespace's path on the server's socket (the socket closing unused: it exits quietly).
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import socket
import sys

GREETING = b"sprites-egress-bridge/1"
PROXY_PORT = 3128
DNS_PORT = 53
_NS_GET_USERNS = 0xB701
_CLONE_NEWUSER, _CLONE_NEWNET = 0x10000000, 0x40000000
_UNPRIVILEGED_PORT_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"


def join_network_namespace(path: str) -> None:
    """Enter the network namespace at ``path`` (``/proc/PID/ns/net``) and its owner."""
    libc = ctypes.CDLL(None, use_errno=True)
    net = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    owner = fcntl.ioctl(net, _NS_GET_USERNS)
    for fd, kind in ((owner, _CLONE_NEWUSER), (net, _CLONE_NEWNET)):
        if libc.setns(fd, kind) != 0:
            error = ctypes.get_errno()
            if not (kind == _CLONE_NEWUSER and error == 22):  # already in it: EINVAL
                raise OSError(error, f"setns {path}: {os.strerror(error)}")
        os.close(fd)


def allow_low_ports() -> None:
    """Let every process in this network namespace bind ports below 1024 (a sprite's
    services run as an unprivileged user); a failure is only reported on stderr."""
    try:
        with open(_UNPRIVILEGED_PORT_START, "w") as setting:
            setting.write("0")
    except OSError as error:
        print(f"egress bridge: low ports stay reserved to root: {error}", file=sys.stderr)


def bind_sockets(port: int, dns_port: int) -> tuple[socket.socket, socket.socket]:
    """The proxy's listening TCP socket and the DNS UDP socket, on 127.0.0.1."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(512)
    resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    resolver.bind(("127.0.0.1", dns_port))
    return listener, resolver


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="egress-bridge")
    parser.add_argument("fd", type=int, help="the inherited unix socket to the server")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--netns", help="the network namespace to join, /proc/PID/ns/net")
    where.add_argument("--netns-later", action="store_true",
                       help="wait for the namespace's path on the server's socket")
    parser.add_argument("--port", type=int, default=PROXY_PORT)
    parser.add_argument("--dns-port", type=int, default=DNS_PORT)
    args = parser.parse_args(argv)
    with socket.socket(fileno=args.fd) as server:
        netns = args.netns
        if args.netns_later:
            netns = server.recv(4096).decode(errors="replace")
            if not netns:
                return 0
        try:
            if netns:
                join_network_namespace(netns)
                allow_low_ports()
            listener, resolver = bind_sockets(args.port, args.dns_port)
        except OSError as error:
            print(f"egress bridge: cannot bind 127.0.0.1:{args.port}/{args.dns_port}: {error}",
                  file=sys.stderr)
            return 1
        try:
            socket.send_fds(server, [GREETING], [listener.fileno(), resolver.fileno()])
            if server.recv(1) != b"1":
                print("egress bridge: the server refused the sockets", file=sys.stderr)
                return 1
        except OSError as error:
            print(f"egress bridge: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
