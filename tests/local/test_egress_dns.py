"""A sprite's names are looked up in real DNS, never in the host's ``/etc/hosts``.

The resolver under test asks a nameserver this module runs on loopback (the test's own
stand-in for the host's, which has no internet here): it answers two names, one only
over TCP (truncated over UDP), and NXDOMAIN for the rest, and records what it was asked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprites_jupyter.local.runtime.egress.dns_client import NameServers
from sprites_jupyter.local.runtime.egress.resolver import ResolveError, Resolver

RECORDS = {"public.example": ["93.184.215.14"], "big.example": ["93.184.215.20", "2001:db8::5"]}
TRUNCATED = {"big.example"}


def _question(data: bytes) -> tuple[str, int, int]:
    labels, offset = [], 12
    while data[offset]:
        labels.append(data[offset + 1:offset + 1 + data[offset]].decode())
        offset += 1 + data[offset]
    qtype = struct.unpack_from("!H", data, offset + 1)[0]
    return ".".join(labels), qtype, offset + 5


def _answer(data: bytes, over_tcp: bool) -> bytes:
    name, qtype, end = _question(data)
    ident = struct.unpack_from("!H", data)[0]
    addresses = [ipaddress.ip_address(a) for a in RECORDS.get(name, [])]
    wanted = [a for a in addresses if (a.version == 4) == (qtype == 1)]
    if name in TRUNCATED and not over_tcp:
        return struct.pack("!HHHHHH", ident, 0x8380, 1, 0, 0, 0) + data[12:end]
    rcode = 0 if addresses else 3
    records = b"".join(struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(a.packed)) + a.packed
                       for a in wanted)
    return struct.pack("!HHHHHH", ident, 0x8180 | rcode, 1, len(wanted), 0, 0) + (
        data[12:end] + records)


class Nameserver:
    """UDP and TCP on one loopback port; ``asked`` lists the names asked, in order."""

    def __init__(self) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.asked: list[str] = []
        for serve in (self._serve_udp, self._serve_tcp):
            threading.Thread(target=serve, daemon=True).start()

    def _serve_udp(self) -> None:
        with self.udp:
            while True:
                try:
                    data, peer = self.udp.recvfrom(512)
                except OSError:
                    return
                self.asked.append(_question(data)[0])
                self.udp.sendto(_answer(data, over_tcp=False), peer)

    def _serve_tcp(self) -> None:
        with self.tcp:
            while True:
                try:
                    client, _ = self.tcp.accept()
                except OSError:
                    return
                with client:
                    size = struct.unpack("!H", client.recv(2))[0]
                    data = client.recv(size)
                    answer = _answer(data, over_tcp=True)
                    client.sendall(struct.pack("!H", len(answer)) + answer)

    def close(self) -> None:
        """Close both sockets (the daemon threads end with the test run)."""
        self.udp.close()
        self.tcp.close()


@pytest.fixture
def nameserver(tmp_path: Path) -> Iterator[tuple[Nameserver, Resolver]]:
    server = Nameserver()
    conf = tmp_path / "resolv.conf"
    conf.write_text("search corp.internal\nnameserver 127.0.0.1\n")
    try:
        yield server, Resolver(own_name="my-sprite",
                               nameservers=NameServers(conf, port=server.port))
    finally:
        server.close()


def _resolve(resolver: Resolver, name: str, family: int = socket.AF_UNSPEC) -> tuple[str, ...]:
    return asyncio.run(resolver.resolve(name, family)).addresses


def _hosts_file_names() -> list[str]:
    """Names the host's /etc/hosts gives, but the sprite's own and localhost's."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return []
    names = {name.lower() for line in lines for name in line.split("#")[0].split()[1:]}
    return sorted(name for name in names if "localhost" not in name)


def test_names_are_asked_of_the_test_nameserver_not_the_hosts_file(
        nameserver: tuple[Nameserver, Resolver]) -> None:
    server, resolver = nameserver
    assert _resolve(resolver, "public.example") == ("93.184.215.14",)
    assert _resolve(resolver, "Public.Example.", socket.AF_INET) == ("93.184.215.14",)
    with pytest.raises(ResolveError) as raised:
        _resolve(resolver, "public.example", socket.AF_INET6)
    assert raised.value.nodata
    assert "public.example" in server.asked
    names = _hosts_file_names()
    if not names:
        pytest.skip("the host's /etc/hosts names nothing but localhost")
    for name in names:
        with pytest.raises(ResolveError) as raised:
            _resolve(resolver, name)
        assert raised.value.missing, name
        assert name in server.asked


def test_a_truncated_answer_is_asked_again_over_tcp(
        nameserver: tuple[Nameserver, Resolver]) -> None:
    _, resolver = nameserver
    assert _resolve(resolver, "big.example") == ("93.184.215.20", "2001:db8::5")


def test_special_use_and_own_names_never_reach_the_nameserver(
        nameserver: tuple[Nameserver, Resolver]) -> None:
    server, resolver = nameserver
    assert _resolve(resolver, "localhost") == ("127.0.0.1", "::1")
    assert _resolve(resolver, "db.localhost", socket.AF_INET) == ("127.0.0.1",)
    assert _resolve(resolver, "my-sprite") == ("127.0.1.1",)
    with pytest.raises(ResolveError) as raised:
        _resolve(resolver, "nothing.invalid")
    assert raised.value.missing
    assert server.asked == []


def test_bad_names_and_silent_nameservers_are_clear_failures(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.1\n")
    resolver = Resolver(nameservers=NameServers(conf, port=port))
    with pytest.raises(ResolveError) as raised:
        _resolve(resolver, "a" * 64 + ".example")
    assert raised.value.missing and "not a valid host name" in str(raised.value)
    with pytest.raises(ResolveError) as raised:
        _resolve(resolver, "public.example")
    assert not raised.value.missing and "no answer from the nameservers" in str(raised.value)
