"""Which destination addresses a sprite may never reach, whatever its policy says, and
the private hosts a server's owner lets sprites reach (a company package mirror)."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_PRIVATE_ENV = "SPRITES_LOCAL_ALLOW_PRIVATE_HOSTS"
"""Server-side: host names and addresses or CIDRs (space or comma separated) in private
or reserved ranges that sprites may reach; what ``--allow-private-hosts`` defaults to."""


def parse_ip(host: str) -> IPAddress | None:
    """``host`` as an IP address (brackets and a zone allowed for IPv6), else ``None``."""
    literal = host.strip().removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        address = ipaddress.ip_address(literal)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_blocked(address: IPAddress) -> bool:
    """Private, loopback, link-local, shared, reserved and multicast ranges: anything that
    is not globally routable. These are the host's own networks (the local server's API
    port among them), so a sprite never reaches them."""
    return address.is_multicast or not address.is_global


@dataclass(frozen=True)
class PrivateAllowance:
    """Private hosts the server's owner allows: by name (``mirror.corp``, ``*.corp``) or
    address range. Never the host's loopback, nor the server's own addresses."""

    names: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()
    server_addresses: frozenset[IPAddress] = frozenset()

    @classmethod
    def parse(cls, text: str, server_addresses: Iterable[IPAddress] = ()) -> PrivateAllowance:
        """From ``"mirror.corp 10.1.0.0/16"``; ValueError saying which entry is wrong."""
        names, networks = set(), []
        for entry in text.replace(",", " ").split():
            if "/" in entry or parse_ip(entry) is not None:
                try:
                    networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                except ValueError:
                    raise ValueError(f"{entry!r} is neither a host name nor an address or "
                                     "CIDR (e.g. mirror.corp, 10.1.2.3, 10.1.0.0/16)") from None
                continue
            name = entry.lower().rstrip(".")
            label = name.removeprefix("*.")
            if not label or not all(part.replace("-", "").isalnum()
                                    for part in label.split(".")):
                raise ValueError(f"{entry!r} is neither a host name nor an address or CIDR "
                                 "(e.g. mirror.corp, *.corp, 10.1.0.0/16)")
            names.add(name)
        return cls(frozenset(names), tuple(networks), frozenset(server_addresses))

    def __bool__(self) -> bool:
        return bool(self.names or self.networks)

    def allows(self, address: IPAddress, name: str | None = None) -> bool:
        """Whether ``address`` (reached as ``name``, if by name) is an allowed private host."""
        if address.is_loopback or address in self.server_addresses:
            return False
        if name is not None:
            name = name.lower().rstrip(".")
            if name in self.names or any(name.endswith(n[1:]) for n in self.names
                                         if n.startswith("*.")):
                return True
        return any(address in network for network in self.networks)

    def describe(self) -> str:
        return " ".join([*sorted(self.names), *map(str, self.networks)])


def allowance_from_environment(server_addresses: Iterable[IPAddress] = ()) -> PrivateAllowance:
    """The allowance in :data:`ALLOW_PRIVATE_ENV` (none when unset)."""
    return PrivateAllowance.parse(os.environ.get(ALLOW_PRIVATE_ENV, ""), server_addresses)
