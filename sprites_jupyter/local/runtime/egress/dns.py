"""The sprite's DNS responder: answers ``REFUSED`` for names the policy denies (fast
failure, as the real service does) and resolves allowed ones in real DNS, never from the
host's ``/etc/hosts`` (:mod:`.resolver`).

Only what a stub resolver asks is spoken: one question, ``A``/``AAAA`` answers
(other types get an empty answer), UDP datagrams on the socket the bridge handed over.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from .resolver import ResolveError

log = logging.getLogger("sprites_jupyter.local.egress")

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5
TYPE_A, TYPE_AAAA, CLASS_IN = 1, 28, 1
TTL = 60
_HEADER = struct.Struct("!HHHHHH")


@dataclass(frozen=True)
class Query:
    ident: int
    flags: int
    name: str
    qtype: int
    qclass: int
    question: bytes
    """The question section as sent, echoed in the reply."""


def parse_query(data: bytes) -> Query | None:
    """The query in ``data``, or ``None`` for something that is not one question."""
    if len(data) < _HEADER.size:
        return None
    ident, flags, qdcount, _, _, _ = _HEADER.unpack_from(data)
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, offset = [], _HEADER.size
    while True:
        if offset >= len(data):
            return None
        length = data[offset]
        offset += 1
        if length == 0:
            break
        if length > 63 or offset + length > len(data):
            return None
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(data):
        return None
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return Query(ident, flags, ".".join(labels).lower(), qtype, qclass,
                 data[_HEADER.size:offset + 4])


def reply(query: Query, rcode: int, addresses: tuple[str, ...] = ()) -> bytes:
    """A response to ``query`` with ``rcode`` and one record per address of its type."""
    records = []
    for address in addresses:
        packed = ipaddress.ip_address(address).packed
        rtype = TYPE_A if len(packed) == 4 else TYPE_AAAA
        if rtype == query.qtype:
            records.append(struct.pack("!HHHIH", 0xC00C, rtype, CLASS_IN, TTL, len(packed))
                           + packed)
    flags = 0x8000 | (query.flags & 0x7900) | 0x0080 | rcode
    return _HEADER.pack(query.ident, flags, 1, len(records), 0, 0) + query.question + b"".join(
        records)


Answer = Callable[[Query], Awaitable[bytes]]


class DnsResponder(asyncio.DatagramProtocol):
    """Serves queries on a UDP socket; each is answered by ``answer`` in its own task."""

    def __init__(self, answer: Answer) -> None:
        self._answer = answer
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = parse_query(data)
        if query is None:
            return
        task = asyncio.get_running_loop().create_task(self._respond(query, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _respond(self, query: Query, addr: tuple[str, int]) -> None:
        try:
            response = await self._answer(query)
        except Exception:
            log.exception("DNS answer failed for %s", query.name)
            response = reply(query, SERVFAIL)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(response, addr)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        for task in self._tasks:
            task.cancel()


def failure_rcode(error: ResolveError) -> int:
    """The rcode a failed lookup answers (an empty NOERROR for a name without an
    address of the type asked, as a nameserver says it)."""
    if error.nodata:
        return NOERROR
    return NXDOMAIN if error.missing else SERVFAIL
