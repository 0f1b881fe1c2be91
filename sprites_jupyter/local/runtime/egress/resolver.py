"""Name resolution for one sprite's egress: real DNS (never the host's ``/etc/hosts``,
see :mod:`.dns_client`) and the sprite's own name, plus which addresses came from which
names (raw-IP connections need an allowed name)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from . import dns_client
from .addresses import parse_ip

TEST_HOSTS_ENV = "SPRITES_LOCAL_EGRESS_TEST_HOSTS"
"""Server-side only: ``name=ip`` pairs (space or comma separated) that resolve without
DNS; those naming the host's own loopback may reach it, others are checked as any
resolved address is. Tests set it on the server they start; a sprite cannot change the
server's environment."""

REMEMBERED = 4096
REMEMBER_SECONDS = 3600.0


def _fits(address: str, family: int) -> bool:
    parsed = parse_ip(address)
    return family == socket.AF_UNSPEC or (parsed is not None and (
        parsed.version == 4) == (family == socket.AF_INET))


class ResolveError(Exception):
    """A name did not resolve; ``missing`` tells NXDOMAIN from a failing resolver, and
    ``nodata`` a name that exists with no address of the family asked."""

    def __init__(self, name: str, reason: str, *, missing: bool, nodata: bool = False
                 ) -> None:
        super().__init__(f"could not resolve {name}: {reason}")
        self.missing = missing
        self.nodata = nodata


@dataclass(frozen=True)
class Resolution:
    """Addresses for a name; ``trusted`` ones (test hosts on loopback) skip the
    private-range block."""

    addresses: tuple[str, ...]
    trusted: bool = False


def test_hosts_from_environment() -> dict[str, str]:
    """The test-only name overrides in :data:`TEST_HOSTS_ENV` (empty when unset)."""
    hosts = {}
    for pair in os.environ.get(TEST_HOSTS_ENV, "").replace(",", " ").split():
        name, _, address = pair.partition("=")
        if parse_ip(address) is None:
            raise ValueError(f"{TEST_HOSTS_ENV}: {pair!r} is not name=ip")
        hosts[name.strip().lower()] = address.strip()
    return hosts


OWN_ADDRESS = "127.0.1.1"
"""The sprite's own name's address, as its generated ``/etc/hosts`` has it."""


class Resolver:
    """Resolves names for the sprite ``own_name`` and remembers, for a while, which names
    gave which addresses (bounded)."""

    def __init__(self, test_hosts: Mapping[str, str] | None = None, own_name: str = "",
                 nameservers: dns_client.NameServers | None = None) -> None:
        self._test_hosts = dict(test_hosts or {})
        self._own_name = own_name.lower()
        self._nameservers = nameservers or dns_client.NameServers()
        self._names_of: OrderedDict[str, tuple[float, frozenset[str]]] = OrderedDict()

    async def resolve(self, name: str, family: int = socket.AF_UNSPEC) -> Resolution:
        """``name``'s addresses of ``family``, remembered as coming from ``name``."""
        if name in self._test_hosts:
            address = self._test_hosts[name]
            parsed = parse_ip(address)
            fits = family == socket.AF_UNSPEC or (family == socket.AF_INET) == (
                parsed is not None and parsed.version == 4)
            resolution = Resolution((address,) if fits else (),
                                    trusted=parsed is not None and parsed.is_loopback)
        else:
            resolution = Resolution(await self._lookup(name, family))
        self.remember(name, resolution.addresses)
        return resolution

    async def _lookup(self, name: str, family: int) -> tuple[str, ...]:
        name = name.rstrip(".").lower()
        by_family: dict[int, tuple[int, ...]] = {socket.AF_INET: (dns_client.TYPE_A,),
                                                 socket.AF_INET6: (dns_client.TYPE_AAAA,)}
        qtypes = by_family.get(family, (dns_client.TYPE_A, dns_client.TYPE_AAAA))
        fixed = dns_client.special_use(name)
        if fixed is None and name == self._own_name:
            fixed = dns_client.Answer(dns_client.NOERROR, (OWN_ADDRESS,))
        if fixed is not None:
            answers: list[dns_client.Answer | BaseException] = [fixed]
        else:
            servers = await self._nameservers.current()
            answers = list(await asyncio.gather(
                *(dns_client.ask(servers, name, qtype) for qtype in qtypes),
                return_exceptions=True))
        addresses = [address for answer in answers if isinstance(answer, dns_client.Answer)
                     for address in answer.addresses if _fits(address, family)]
        if addresses:
            return tuple(dict.fromkeys(addresses))
        failures = [answer for answer in answers if isinstance(answer, BaseException)]
        for failure in failures:
            if isinstance(failure, UnicodeError):
                raise ResolveError(name, "not a valid host name", missing=True)
            if not isinstance(failure, dns_client.LookupFailed):
                raise failure
        if failures:
            raise ResolveError(name, str(failures[0]), missing=False)
        rcodes = {answer.rcode for answer in answers if isinstance(answer, dns_client.Answer)}
        if rcodes == {dns_client.NOERROR}:
            raise ResolveError(name, "no address", missing=True, nodata=True)
        if rcodes <= {dns_client.NOERROR, dns_client.NXDOMAIN}:
            raise ResolveError(name, "no such name", missing=True)
        raise ResolveError(name, f"the nameserver answered rcode {max(rcodes)}", missing=False)

    def remember(self, name: str, addresses: tuple[str, ...]) -> None:
        now = time.monotonic()
        for address in addresses:
            key = str(parse_ip(address) or address)
            _, names = self._names_of.pop(key, (now, frozenset()))
            self._names_of[key] = (now, names | {name})
        while len(self._names_of) > REMEMBERED:
            self._names_of.popitem(last=False)

    def names_for(self, address: str) -> frozenset[str]:
        """The names that recently resolved to ``address``."""
        key = str(parse_ip(address) or address)
        entry = self._names_of.get(key)
        if entry is None or time.monotonic() - entry[0] > REMEMBER_SECONDS:
            return frozenset()
        return entry[1]
