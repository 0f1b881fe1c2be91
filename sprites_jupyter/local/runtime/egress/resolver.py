"""Name resolution for one sprite's egress: the host's resolver off the event loop, plus
which addresses came from which names (raw-IP connections need an allowed name)."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from .addresses import parse_ip

TEST_HOSTS_ENV = "SPRITES_LOCAL_EGRESS_TEST_HOSTS"
"""Server-side only: ``name=ip`` pairs (space or comma separated) that resolve without
DNS; those naming the host's own loopback may reach it, others are checked as any
resolved address is. Tests set it on the server they start; a sprite cannot change the
server's environment."""

REMEMBERED = 4096
REMEMBER_SECONDS = 3600.0


class ResolveError(Exception):
    """A name did not resolve; ``missing`` tells NXDOMAIN from a failing resolver."""

    def __init__(self, name: str, reason: str, *, missing: bool) -> None:
        super().__init__(f"could not resolve {name}: {reason}")
        self.missing = missing


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


class Resolver:
    """Resolves names for one sprite and remembers, for a while, which names gave which
    addresses (bounded)."""

    def __init__(self, test_hosts: Mapping[str, str] | None = None) -> None:
        self._test_hosts = dict(test_hosts or {})
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
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            missing = error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
            raise ResolveError(name, error.strerror or str(error), missing=missing) from None
        except UnicodeError:
            raise ResolveError(name, "not a valid host name", missing=True) from None
        return tuple(dict.fromkeys(str(info[4][0]) for info in infos))

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
