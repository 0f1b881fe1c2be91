"""Looking names up in real DNS: the host's nameservers, asked directly.

The host's resolver library (``getaddrinfo``) also answers from the host's
``/etc/hosts`` and whatever else its ``nsswitch.conf`` lists (mDNS, LDAP, a container
runtime's names): private names a sprite must not learn. So a sprite's names are
looked up here instead, as a stub resolver does: an ``A`` or ``AAAA`` question over
UDP to the nameservers of the host's ``/etc/resolv.conf`` (TCP when the answer is
truncated), the answer's addresses taken as given. The special-use names of RFC 6761
never leave the server: ``localhost`` is loopback, ``.invalid`` does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import secrets
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path

RESOLV_CONF = Path("/etc/resolv.conf")
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
TIMEOUT = 2.0
"""Per nameserver and attempt, as resolv.conf's ``timeout`` (glibc waits 5 s)."""
ATTEMPTS = 2
_REREAD = 30.0
_HEADER = struct.Struct("!HHHHHH")


class LookupFailed(Exception):
    """No answer: no nameserver answered, or they failed (SERVFAIL)."""


@dataclass(frozen=True)
class Answer:
    """The rcode and the addresses of one question's answer."""

    rcode: int
    addresses: tuple[str, ...] = ()


def encode_name(name: str) -> bytes:
    """``name`` in DNS wire form; raises UnicodeError for a name no DNS can carry."""
    ascii_name = name.rstrip(".").encode("idna")
    labels = ascii_name.split(b".")
    if not ascii_name or len(ascii_name) > 253 or any(not 0 < len(x) <= 63 for x in labels):
        raise UnicodeError(f"not a valid host name: {name[:80]!r}")
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def _skip_name(data: bytes, offset: int) -> int:
    """The offset after the (possibly compressed) name at ``offset``."""
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            return offset + 2
        offset += 1 + length
        if length == 0:
            return offset


def parse_answer(data: bytes, ident: int, question: bytes, qtype: int) -> tuple[Answer, bool]:
    """The answer to our question in ``data`` and whether it was truncated; ValueError
    (or IndexError, struct.error) for anything else (a stray or spoofed packet)."""
    got, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(data)
    end = _HEADER.size + len(question)
    if got != ident or not flags & 0x8000 or qdcount != 1 or (
            data[_HEADER.size:end].lower() != question.lower()):
        raise ValueError("not the answer to this query")
    truncated = bool(flags & 0x0200)
    addresses = []
    offset = end
    for _ in range(ancount):
        offset = _skip_name(data, offset)
        rtype, rclass, _, length = struct.unpack_from("!HHIH", data, offset)
        offset += 10
        rdata = data[offset:offset + length]
        offset += length
        if len(rdata) != length:
            raise ValueError("short record")
        if rclass == CLASS_IN and rtype == qtype and length in (4, 16):
            addresses.append(str(ipaddress.ip_address(rdata)))
    return Answer(flags & 0x000F, tuple(addresses)), truncated


Server = tuple[str, int]
"""A nameserver's address and port."""


class NameServers:
    """The host's nameservers (``/etc/resolv.conf``, re-read now and then), each on port
    53; ``port`` puts them on another (a test's own nameserver)."""

    def __init__(self, path: Path = RESOLV_CONF, port: int = 53) -> None:
        self._path = path
        self._port = port
        self._servers: tuple[Server, ...] = ()
        self._read_at = -_REREAD

    async def current(self) -> tuple[Server, ...]:
        if time.monotonic() - self._read_at >= _REREAD:
            self._servers = await asyncio.to_thread(self._read)
            self._read_at = time.monotonic()
        return self._servers

    def _read(self) -> tuple[Server, ...]:
        try:
            lines = self._path.read_text().splitlines()
        except OSError:
            lines = []
        found = []
        for line in lines:
            fields = line.split()
            if len(fields) >= 2 and fields[0] == "nameserver":
                address = fields[1].split("%")[0]
                with contextlib.suppress(ValueError):
                    found.append(str(ipaddress.ip_address(address)))
        return tuple((address, self._port)
                     for address in found[:3] or ["127.0.0.1"])  # resolv.conf(5)'s default


async def ask(servers: tuple[Server, ...], name: str, qtype: int) -> Answer:
    """One question to the nameservers in turn (``ATTEMPTS`` rounds): the first answer
    that is not SERVFAIL. Raises LookupFailed, or UnicodeError for an invalid name."""
    question = encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)
    for _ in range(ATTEMPTS):
        for server in servers:
            with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError,
                                     struct.error):
                answer = await _ask_one(server, question, qtype)
                if answer.rcode != SERVFAIL:
                    return answer
    raise LookupFailed("no answer from the nameservers "
                       f"({', '.join(address for address, _ in servers)})")


async def _ask_one(server: Server, question: bytes, qtype: int) -> Answer:
    ident = secrets.randbelow(1 << 16)
    query = _HEADER.pack(ident, 0x0100, 1, 0, 0, 0) + question  # RD: recursion desired
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    loop = asyncio.get_running_loop()
    with socket.socket(family, socket.SOCK_DGRAM) as udp:
        udp.setblocking(False)
        await loop.sock_connect(udp, server)
        await loop.sock_sendall(udp, query)
        async with asyncio.timeout(TIMEOUT):
            while True:
                data = await loop.sock_recv(udp, 4096)
                try:
                    answer, truncated = parse_answer(data, ident, question, qtype)
                except (ValueError, IndexError, struct.error):
                    continue  # not ours: keep waiting for the real answer
                break
    if not truncated:
        return answer
    with socket.socket(family, socket.SOCK_STREAM) as tcp:
        tcp.setblocking(False)
        async with asyncio.timeout(TIMEOUT):
            await loop.sock_connect(tcp, server)
            await loop.sock_sendall(tcp, struct.pack("!H", len(query)) + query)
            size = struct.unpack("!H", await _receive(loop, tcp, 2))[0]
            data = await _receive(loop, tcp, size)
    return parse_answer(data, ident, question, qtype)[0]


async def _receive(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = await loop.sock_recv(sock, size - len(data))
        if not chunk:
            raise ConnectionError("the nameserver closed the connection")
        data += chunk
    return data


def special_use(name: str) -> Answer | None:
    """The answer RFC 6761 fixes for ``name`` (``localhost``, ``.invalid``), if any."""
    if name == "localhost" or name.endswith(".localhost"):
        return Answer(NOERROR, ("127.0.0.1", "::1"))
    if name == "invalid" or name.endswith(".invalid"):
        return Answer(NXDOMAIN)
    return None
