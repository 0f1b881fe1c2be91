"""One sprite's egress proxy: every outbound connection of a sandboxed sprite goes
through it, and it applies the sprite's *current* network policy to each.

It serves, on the sockets the bridge made in the sprite's network namespace, HTTP absolute-URI
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
from .addresses import ALLOW_PRIVATE_ENV, PrivateAllowance, is_blocked, parse_ip
from .handshake import HEAD_LIMIT, Ask, BadRequest, Send, read_ask, socks_reply
from .relay import Relay, SocketReader
from .resolver import ResolveError, Resolver

log = logging.getLogger("sprites_jupyter.local.egress")

HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 10.0
_REASONS = {400: "Bad Request", 403: "Forbidden", 431: "Request Header Fields Too Large",
            502: "Bad Gateway", 504: "Gateway Timeout", 505: "HTTP Version Not Supported"}
_SOCKS_CODES = {403: 2, 502: 4, 504: 4}


class Refusal(Exception):
    """A connection the proxy will not make; the message is the text the client sees.
    ``reason`` is the cause in a few words for the status line, the one part of the
    answer that HTTPS clients (pip, curl, git: all CONNECT) print."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(eq=False)
class _Link:
    """An open relayed connection, kept so a policy change can cut it."""

    host: str
    relay: Relay


@dataclass
class EgressProxy:
    """The egress proxy and DNS responder of the sprite ``sprite``."""

    sprite: str
    rules: list[dict[str, Any]] = field(default_factory=list)
    test_hosts: Mapping[str, str] | None = None
    """Names that resolve to fixed addresses, private ones included: tests only."""
    private_allowed: PrivateAllowance = field(default_factory=PrivateAllowance)
    """Private hosts the server's owner lets sprites reach (``--allow-private-hosts``)."""
    max_connections: int = 128
    """Connections served at once (each holds 6 of the server's file descriptors); more
    wait in the listening socket's backlog."""

    def __post_init__(self) -> None:
        self.resolver = Resolver(self.test_hosts, own_name=self.sprite)
        self._links: set[_Link] = set()
        self._connections: set[asyncio.Task[None]] = set()
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._dns: dns.DnsResponder | None = None
        self._slots = asyncio.Semaphore(self.max_connections)

    # -- policy ---------------------------------------------------------------

    def set_rules(self, rules: Sequence[Mapping[str, Any]]) -> int:
        """Use ``rules`` for every new connection; cut open ones they deny. Returns how
        many were cut."""
        self.rules = [dict(rule) for rule in rules]
        denied = [link for link in self._links if not self.verdict(link.host).allowed]
        for link in denied:
            link.relay.cut()
        if denied:
            log.info("sprite %s: policy change cut %d connection(s)", self.sprite, len(denied))
        return len(denied)

    def verdict(self, host: str) -> Verdict:
        """Whether the policy lets the sprite reach ``host`` (a name or an IP address)."""
        address = parse_ip(host)
        if address is None:
            return decide(self.rules, host)
        literal = str(address)
        if is_blocked(address) and not self.private_allowed.allows(address):
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
            raise Refusal(403, _denial_text(verdict), _denial_reason(verdict))
        if parse_ip(host) is not None:
            return (verdict.domain,)
        try:
            resolution = await self.resolver.resolve(host)
        except ResolveError as error:
            raise Refusal(502, str(error)) from None
        if resolution.trusted:
            return resolution.addresses
        reachable = tuple(a for a in resolution.addresses if self._reachable(a, host))
        if not reachable:
            addresses = ", ".join(resolution.addresses)
            raise Refusal(403, f"Blocked: {host} resolves only to private, loopback or "
                               f"reserved addresses ({addresses}), which a sprite reaches "
                               "only when the server allows them: sprites-local serve "
                               f"--allow-private-hosts {host} (or ${ALLOW_PRIVATE_ENV}).",
                          f"Forbidden: {host} resolves only to private or reserved "
                          f"addresses ({addresses}); see sprites-local serve "
                          "--allow-private-hosts")
        return reachable

    def _reachable(self, address: str, host: str) -> bool:
        parsed = parse_ip(address)
        return parsed is not None and (not is_blocked(parsed)
                                       or self.private_allowed.allows(parsed, host))

    # -- serving --------------------------------------------------------------

    async def serve(self, listener: socket.socket, dns_socket: socket.socket | None = None
                    ) -> None:
        """Serve clients on ``listener`` and DNS on ``dns_socket`` (replacing earlier ones);
        both non-blocking, and the proxy owns them from now on."""
        await self.stop_serving()
        loop = asyncio.get_running_loop()
        self._listener = listener
        self._accepting = loop.create_task(self._accept_forever(listener))
        if dns_socket is not None:
            _, self._dns = await loop.create_datagram_endpoint(
                lambda: dns.DnsResponder(self._answer_dns), sock=dns_socket)

    async def stop_serving(self) -> None:
        """Stop accepting (open connections keep going)."""
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
            self._accepting = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._dns is not None:
            self._dns.close()
            self._dns = None

    async def close(self) -> None:
        """Stop serving and end every connection."""
        await self.stop_serving()
        for task in list(self._connections):
            task.cancel()

    async def _accept_forever(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()
            try:
                client, _ = await loop.sock_accept(listener)
            except OSError as error:
                self._slots.release()
                log.warning("sprite %s: egress accept failed: %s", self.sprite, error)
                await asyncio.sleep(0.1)
                continue
            except BaseException:
                self._slots.release()
                raise
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(self._handle(client))
            self._connections.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._connections.discard(task)
        self._slots.release()

    async def _answer_dns(self, query: dns.Query) -> bytes:
        if query.flags & 0x7800:
            return dns.reply(query, dns.NOTIMP)
        if not self.verdict(query.name).allowed or parse_ip(query.name) is not None:
            return dns.reply(query, dns.REFUSED)
        if query.qclass != dns.CLASS_IN or query.qtype not in (dns.TYPE_A, dns.TYPE_AAAA):
            return dns.reply(query, dns.NOERROR)
        try:
            resolution = await self.resolver.resolve(
                query.name, socket.AF_INET if query.qtype == dns.TYPE_A else socket.AF_INET6)
        except ResolveError as error:
            return dns.reply(query, dns.failure_rcode(error))
        return dns.reply(query, dns.NOERROR, resolution.addresses)

    async def _handle(self, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        reader = SocketReader(client, HEAD_LIMIT)

        async def send(data: bytes) -> None:
            await asyncio.wait_for(loop.sock_sendall(client, data), HEAD_TIMEOUT)

        try:
            ask = await asyncio.wait_for(read_ask(reader, send), HEAD_TIMEOUT)
            upstream = await self._open(ask)
        except BadRequest as error:
            if not error.answered:
                await _answer_error(send, error.status, str(error), error.socks_reply)
            client.close()
            return
        except Refusal as error:
            log.info("sprite %s: refused %s", self.sprite, error)
            await _answer_error(send, error.status, str(error),
                                _SOCKS_CODES.get(error.status, 1) if ask.kind == "socks" else None,
                                error.reason)
            client.close()
            return
        except (TimeoutError, asyncio.IncompleteReadError, OSError):
            client.close()
            return
        relay = Relay(client, upstream)
        try:
            if ask.kind == "connect":
                await send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            elif ask.kind == "socks":
                await send(socks_reply(0))
            await asyncio.wait_for(loop.sock_sendall(upstream, ask.head + reader.leftover()),
                                   HEAD_TIMEOUT)
        except (TimeoutError, OSError):
            client.close()
            upstream.close()
            return
        link = _Link(ask.host, relay)
        self._links.add(link)
        if not self.verdict(ask.host).allowed:  # the policy changed while connecting
            relay.cut()
        try:
            await relay.run()
        finally:
            self._links.discard(link)

    async def _open(self, ask: Ask) -> socket.socket:
        addresses = await self.admit(ask.host)
        loop = asyncio.get_running_loop()
        failure = "no address"
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            upstream = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            upstream.setblocking(False)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                await asyncio.wait_for(loop.sock_connect(upstream, (address, ask.port)),
                                       CONNECT_TIMEOUT)
                return upstream
            except TimeoutError:
                failure = f"no answer within {CONNECT_TIMEOUT:g} s"
            except OSError as error:
                failure = error.strerror or str(error)
            upstream.close()
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


def _denial_reason(verdict: Verdict) -> str:
    """A policy refusal in a few words, for the status line."""
    if parse_ip(verdict.domain) is not None and "always" in verdict.rule:
        return f"Forbidden: {verdict.domain} is a private, loopback or reserved address"
    return f"Forbidden by the sprite's network policy: {verdict.domain} is denied ({verdict.rule})"


async def _answer_error(send: Send, status: int, message: str, socks_code: int | None,
                        reason: str = "") -> None:
    if socks_code is not None:
        data = socks_reply(socks_code)
    else:
        body = (message + "\n").encode()
        reason = " ".join((reason or _REASONS.get(status, "Error")).split())
        data = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    with contextlib.suppress(TimeoutError, OSError):
        await send(data)
