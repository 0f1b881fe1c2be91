"""Which destination addresses a sprite may never reach, whatever its policy says."""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


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
