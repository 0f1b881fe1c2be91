"""One sprite's egress proxy: every outbound connection of a sandboxed sprite goes
through it, and it applies the sprite's *current* network policy to each.

It serves, on the listening sockets the in-sprite bridge handed over, HTTP absolute-URI
requests, ``CONNECT`` tunnels and SOCKS5 on one port, and the sprite's DNS on UDP.
Private and loopback ranges of the host are always refused; raw IP addresses only pass
when an allowed name resolved to them. A refusal is immediate and says why and how to
allow it. :meth:`EgressProxy.set_rules` applies a new policy at once and cuts open
connections that it no longer allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ....policy_rules import Verdict, decide, unrestricted
from . import dns
from .addresses import is_blocked, parse_ip
from .handshake import HEAD_LIMIT, Ask, BadRequest, read_ask, socks_reply
from .resolver import ResolveError, Resolver

log = logging.getLogger("sprites_jupyter.local.egress")

CHUNK = 256 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
_REASONS = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large",
            502: "Bad Gateway", 504: "Gateway Timeout", 505: "HTTP Version Not Supported"}
_SOCKS_CODES = {403: 2, 502: 4, 504: 4}


class Refusal(Exception):
    """A connection the proxy will not make; the message is the text the client sees."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(eq=False)
class _Link:
    """An open relayed connection, kept so a policy change can cut it."""

    host: str
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter

    def cut(self) -> None:
        self.client.transport.abort()
        self.upstream.transport.abort()


@dataclass
class EgressProxy:
    """The egress proxy and DNS responder of the sprite ``sprite``."""

    sprite: str
    rules: list[dict[str, Any]] = field(default_factory=list)
    test_hosts: Mapping[str, str] | None = None
    """Names that resolve to fixed addresses, private ones included: tests only."""

    def __post_init__(self) -> None:
        self.resolver = Resolver(self.test_hosts)
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._dns: dns.DnsResponder | None = None

    # -- policy ---------------------------------------------------------------

    def set_rules(self, rules: Sequence[Mapping[str, Any]]) -> int:
        """Use ``rules`` for every new connection; cut open ones they deny. Returns how
        many were cut."""
        self.rules = [dict(rule) for rule in rules]
        denied = [link for link in self._links if not self.verdict(link.host).allowed]
        for link in denied:
            link.cut()
        if denied:
            log.info("sprite %s: policy change cut %d connection(s)", self.sprite, len(denied))
        return len(denied)

    def verdict(self, host: str) -> Verdict:
        """Whether the policy lets the sprite reach ``host`` (a name or an IP address)."""
        address = parse_ip(host)
        if address is None:
            return decide(self.rules, host)
        literal = str(address)
        if is_blocked(address):
            return Verdict(literal, False, "private, loopback or reserved address "
                                           "(always blocked)")
        if unrestricted(self.rules):
            return Verdict(literal, True, "no rules (unrestricted)")
        for name in sorted(self.resolver.names_for(literal)):
            by_name = decide(self.rules, name)
            if by_name.allowed:
                return Verdict(literal, True, f"resolved from {name}: {by_name.rule}")
        return Verdict(literal, False, "raw IP address that no allowed name resolved to")

    async def admit(self, host: str) -> tuple[str, ...]:
        """The addresses to connect to for ``host``, or :class:`Refusal` saying why not."""
        verdict = self.verdict(host)
        if not verdict.allowed:
            raise Refusal(403, _denial_text(verdict))
        if parse_ip(host) is not None:
            return (verdict.domain,)
        try:
            resolution = await self.resolver.resolve(host)
        except ResolveError as error:
            raise Refusal(502, str(error)) from None
        if resolution.trusted:
            return resolution.addresses
        reachable = tuple(a for a in resolution.addresses if not is_blocked(parse_ip(a)))
        if not reachable:
            raise Refusal(403, f"Blocked: {host} resolves only to private, loopback or "
                               f"reserved addresses ({', '.join(resolution.addresses)}), "
                               "which a sprite never reaches.")
        return reachable

    # -- serving --------------------------------------------------------------

    async def serve(self, listener: socket.socket, dns_socket: socket.socket | None = None
                    ) -> None:
        """Serve clients on ``listener`` and DNS on ``dns_socket`` (replacing earlier ones)."""
        await self.stop_serving()
        loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._handle, sock=listener,
                                                  limit=HEAD_LIMIT)
        if dns_socket is not None:
            _, self._dns = await loop.create_datagram_endpoint(
                lambda: dns.DnsResponder(self._answer_dns), sock=dns_socket)

    async def stop_serving(self) -> None:
        """Stop accepting (open connections keep going)."""
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._dns is not None:
            self._dns.close()
            self._dns = None

    async def close(self) -> None:
        """Stop serving and cut every open connection."""
        await self.stop_serving()
        for link in list(self._links):
            link.cut()

    async def _answer_dns(self, query: dns.Query) -> bytes:
        if query.flags & 0x7800:
            return dns.reply(query, dns.NOTIMP)
        if not self.verdict(query.name).allowed or parse_ip(query.name) is not None:
            return dns.reply(query, dns.REFUSED)
        if query.qclass != dns.CLASS_IN or query.qtype not in (dns.TYPE_A, dns.TYPE_AAAA):
            return dns.reply(query, dns.NOERROR)
        try:
            resolution = await self.resolver.resolve(query.name)
        except ResolveError as error:
            return dns.reply(query, dns.failure_rcode(error))
        return dns.reply(query, dns.NOERROR, resolution.addresses)

    async def _handle(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        try:
            ask = await asyncio.wait_for(read_ask(reader, writer), HEAD_TIMEOUT)
            upstream = await self._open(ask)
        except BadRequest as error:
            if not error.answered:
                _answer_error(writer, error.status, str(error), error.socks_reply)
            await _close(writer)
            return
        except Refusal as error:
            log.info("sprite %s: refused %s", self.sprite, error)
            _answer_error(writer, error.status, str(error),
                          _SOCKS_CODES.get(error.status, 1) if ask.kind == "socks" else None)
            await _close(writer)
            return
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            await _close(writer)
            return
        up_reader, up_writer = upstream
        if ask.kind == "http":
            up_writer.write(ask.head)
        elif ask.kind == "connect":
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            writer.write(socks_reply(0))
        link = _Link(ask.host, writer, up_writer)
        self._links.add(link)
        try:
            await _relay(reader, writer, up_reader, up_writer)
        finally:
            self._links.discard(link)

    async def _open(self, ask: Ask) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        addresses = await self.admit(ask.host)
        failure = "no address"
        for address in addresses:
            try:
                return await asyncio.wait_for(
                    asyncio.open_connection(address, ask.port, limit=CHUNK), CONNECT_TIMEOUT)
            except TimeoutError:
                failure = f"no answer within {CONNECT_TIMEOUT:g} s"
            except OSError as error:
                failure = error.strerror or str(error)
        status = 504 if failure.startswith("no answer") else 502
        raise Refusal(status, f"could not connect to {ask.host}:{ask.port}: {failure}")


def _denial_text(verdict: Verdict) -> str:
    if parse_ip(verdict.domain) is not None:
        if "always" in verdict.rule:
            return (f"Blocked: {verdict.domain} is a private, loopback or reserved address, "
                    "which a sprite never reaches (no policy can allow it).")
        return (f"Blocked by the sprite's network policy: {verdict.domain} is a "
                f"{verdict.rule}. Connect by name and allow that name: "
                "%sprite policy allow DOMAIN")
    return (f"Blocked by the sprite's network policy: {verdict.domain} is denied: "
            f"{verdict.rule}. To allow it: %sprite policy allow {verdict.domain}")


def _answer_error(writer: asyncio.StreamWriter, status: int, message: str,
                  socks_code: int | None) -> None:
    if socks_code is not None:
        writer.write(socks_reply(socks_code))
        return
    body = (message + "\n").encode()
    reason = _REASONS.get(status, "Error")
    if status == 403:
        reason = "Forbidden by the sprite's network policy"
    writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF with back-pressure (at most a few chunks buffered), then half-close."""
    while data := await reader.read(CHUNK):
        writer.write(data)
        await writer.drain()
    if writer.can_write_eof() and not writer.is_closing():
        writer.write_eof()


async def _relay(client_reader: asyncio.StreamReader, client: asyncio.StreamWriter,
                 upstream_reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
    """Relay both ways until the upstream side ends (the client's EOF only half-closes)."""
    outbound = asyncio.ensure_future(_pipe(client_reader, upstream))
    outbound.add_done_callback(
        lambda task: task.cancelled() or task.exception() is None or (
            client.transport.abort(), upstream.transport.abort()))
    try:
        with contextlib.suppress(ConnectionError, OSError):
            await _pipe(upstream_reader, client)
    finally:
        outbound.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await outbound
        await _close(upstream)
        await _close(client)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()
