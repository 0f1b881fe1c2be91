"""What a client asks the egress proxy for: an HTTP absolute-URI request, a ``CONNECT``
tunnel or a SOCKS5 ``CONNECT``, read from the first bytes of its connection.

One HTTP request per proxy connection: the request goes upstream with
``Connection: close``, so a client never sends a second request (possibly for another
host) down a connection already relayed to the first one.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .addresses import parse_ip
from .relay import SocketReader

HEAD_LIMIT = 64 * 1024
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.?)+$")
_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization",
               "proxy-authenticate", "te", "trailer", "upgrade"}
SOCKS_VERSION = 5


class BadRequest(Exception):
    """The client's request cannot be served; ``status`` is the HTTP answer to give."""

    def __init__(self, status: int, message: str, *, socks_reply: int | None = None,
                 answered: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.socks_reply = socks_reply
        """The SOCKS5 reply code for a SOCKS client (``None``: an HTTP client)."""
        self.answered = answered
        """The client was already told (nothing more to send)."""


@dataclass(frozen=True)
class Ask:
    """One destination a client wants, and how to answer it."""

    kind: str
    """``http`` (forward ``head`` upstream), ``connect`` or ``socks`` (a raw tunnel)."""
    host: str
    port: int
    head: bytes = b""


def _checked_host(host: str | None) -> str:
    if not host:
        raise BadRequest(400, "the request names no host")
    host = host.lower()
    if parse_ip(host) is None and not _HOST_NAME.match(host):
        raise BadRequest(400, f"{host!r} is not a valid host name")
    return host.rstrip(".")


def _host_port(authority: str, default_port: int | None) -> tuple[str, int]:
    try:
        parts = urlsplit("//" + authority)
        port = parts.port or default_port
    except ValueError:
        raise BadRequest(400, f"{authority!r} is not host:port") from None
    if port is None:
        raise BadRequest(400, f"{authority!r} has no port (CONNECT needs host:port)")
    return _checked_host(parts.hostname), port


Send = Callable[[bytes], Awaitable[None]]


async def read_ask(reader: SocketReader, send: Send) -> Ask:
    """The client's ask; SOCKS5's method negotiation is answered with ``send`` on the way."""
    first = await reader.readexactly(1)
    if first[0] == SOCKS_VERSION:
        return await _read_socks(reader, send)
    try:
        head = first + await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(431, f"request head larger than {HEAD_LIMIT // 1024} KiB") from None
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "the connection closed before the request head ended") from None
    return _parse_http(head)


def _parse_http(head: bytes) -> Ask:
    try:
        text = head.decode("latin-1")
        request_line, *header_lines = text.split("\r\n")[:-2]
        method, target, version = request_line.split(" ")
    except ValueError:
        raise BadRequest(400, "malformed request line") from None
    if not version.startswith("HTTP/1."):
        raise BadRequest(505, f"{version} is not HTTP/1.x")
    if method.upper() == "CONNECT":
        host, port = _host_port(target, None)
        return Ask("connect", host, port)
    parts = urlsplit(target)
    if parts.scheme.lower() != "http" or not parts.netloc:
        if parts.scheme.lower() == "https":
            raise BadRequest(400, "send https:// requests through CONNECT (use an HTTPS_PROXY)")
        raise BadRequest(400, "this is the sprite's egress proxy: send absolute-URI requests "
                              "(http://host/path) or CONNECT host:port")
    host, port = _host_port(parts.netloc.rpartition("@")[2], 80)
    headers = [line for line in header_lines
               if line.partition(":")[0].strip().lower() not in _connection_headers(
                   header_lines)]
    if not any(line.lower().startswith("host:") for line in headers):
        headers.insert(0, f"Host: {parts.netloc.rpartition('@')[2]}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    lines = [f"{method} {path} {version}", *headers, "Connection: close", "", ""]
    return Ask("http", host, port, "\r\n".join(lines).encode("latin-1"))


def _connection_headers(header_lines: list[str]) -> set[str]:
    """Hop-by-hop headers, including any the ``Connection`` header lists."""
    named = set(_HOP_BY_HOP)
    for line in header_lines:
        key, _, value = line.partition(":")
        if key.strip().lower() in ("connection", "proxy-connection"):
            named.update(token.strip().lower() for token in value.split(","))
    return named


async def _read_socks(reader: SocketReader, send: Send) -> Ask:
    try:
        count = (await reader.readexactly(1))[0]
        methods = await reader.readexactly(count)
        if 0 not in methods:
            await send(b"\x05\xff")
            raise BadRequest(400, "SOCKS5 without 'no authentication' offered", socks_reply=1,
                             answered=True)
        await send(b"\x05\x00")
        version, command, _, address_type = await reader.readexactly(4)
        if address_type == 1:
            host = str(ipaddress.IPv4Address(await reader.readexactly(4)))
        elif address_type == 4:
            host = str(ipaddress.IPv6Address(await reader.readexactly(16)))
        elif address_type == 3:
            length = (await reader.readexactly(1))[0]
            host = (await reader.readexactly(length)).decode("ascii", "replace")
        else:
            raise BadRequest(400, "unknown SOCKS5 address type", socks_reply=8)
        (port,) = struct.unpack("!H", await reader.readexactly(2))
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "the SOCKS5 handshake ended early", socks_reply=1,
                         answered=True) from None
    if version != SOCKS_VERSION or command != 1:
        raise BadRequest(400, "only SOCKS5 CONNECT is served", socks_reply=7)
    try:
        return Ask("socks", _checked_host(host), port)
    except BadRequest as error:
        raise BadRequest(error.status, str(error), socks_reply=1) from None


def socks_reply(code: int) -> bytes:
    """A SOCKS5 reply with ``code`` (0 = granted) and an unspecified bound address."""
    return bytes([SOCKS_VERSION, code, 0, 1, 0, 0, 0, 0, 0, 0])
