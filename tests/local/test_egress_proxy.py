"""The egress proxy and DNS responder on the host's loopback, driven by real clients
(curl, urllib, raw sockets). The in-sprite path is in ``test_egress_sprite.py``."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from sprites_jupyter.local.runtime.egress.proxy import EgressProxy
from tests.local.egress_targets import Targets, dns_query, start_targets

NAMES = ["allowed.test", "denied.test", "other.test"]
POLICY = [{"domain": "allowed.test", "action": "allow"},
          {"domain": "denied.test", "action": "deny"}]
REFUSED, NXDOMAIN = 5, 3


class HostProxy:
    """An :class:`EgressProxy` served on host sockets from a loop in a thread."""

    def __init__(self, test_hosts: dict[str, str], max_connections: int = 128) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.proxy = EgressProxy("host-test", list(POLICY), test_hosts=test_hosts,
                                 max_connections=max_connections)
        listener = socket.create_server(("127.0.0.1", 0))
        resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        resolver.bind(("127.0.0.1", 0))
        listener.setblocking(False)
        resolver.setblocking(False)
        self.port, self.dns_port = listener.getsockname()[1], resolver.getsockname()[1]
        self.run(self.proxy.serve(listener, resolver))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout=60)

    def set_rules(self, rules: list[dict[str, str]]) -> int:
        async def apply() -> int:
            return self.proxy.set_rules(rules)
        return self.run(apply())

    def close(self) -> None:
        self.run(self.proxy.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    running = start_targets(tmp_path_factory.mktemp("egress-targets"), NAMES)
    yield running
    running.close()


@pytest.fixture
def host_proxy() -> Iterator[HostProxy]:
    running = HostProxy({name: "127.0.0.1" for name in NAMES})
    yield running
    running.close()


def through(host_proxy: HostProxy, url: str, *, cafile: Path | None = None) -> tuple[int, str]:
    """GET ``url`` with urllib through the proxy: (status, body or error text)."""
    proxies = {"http": host_proxy.url, "https": host_proxy.url}
    handlers: list[Any] = [urllib.request.ProxyHandler(proxies)]
    if cafile is not None:
        handlers.append(urllib.request.HTTPSHandler(
            context=ssl.create_default_context(cafile=str(cafile))))
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except urllib.error.URLError as error:
        return 0, str(error.reason)


def curl(*args: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    return subprocess.run(["curl", "-sS", "--max-time", "30", *args],
                          capture_output=True, text=True, timeout=60)


def test_http_request_to_allowed_name_is_forwarded(host_proxy, targets) -> None:
    status, body = through(host_proxy, f"http://allowed.test:{targets.http_port}/a?b=1")
    assert (status, body) == (200, f"hello from allowed.test:{targets.http_port} /a?b=1\n")


def test_denied_name_gets_403_naming_domain_rule_and_fix(host_proxy, targets) -> None:
    status, body = through(host_proxy, f"http://denied.test:{targets.http_port}/")
    assert status == 403
    assert "denied.test is denied: rule 1 (denied.test deny)" in body
    assert "%sprite policy allow denied.test" in body
    status, body = through(host_proxy, f"http://other.test:{targets.http_port}/")
    assert status == 403 and "no matching rule" in body


def test_https_through_connect_and_denied_connect(host_proxy, targets) -> None:
    url = f"https://allowed.test:{targets.https_port}/secure"
    assert through(host_proxy, url, cafile=targets.ca_file) == (
        200, f"hello from allowed.test:{targets.https_port} /secure\n")
    status, reason = through(host_proxy, f"https://denied.test:{targets.https_port}/",
                             cafile=targets.ca_file)
    assert status == 0 and "403 Forbidden by the sprite's network policy" in reason
    done = curl("--cacert", str(targets.ca_file), "-x", host_proxy.url, url)
    assert done.stdout == f"hello from allowed.test:{targets.https_port} /secure\n"


def test_socks5_with_remote_names(host_proxy, targets) -> None:
    socks = f"127.0.0.1:{host_proxy.port}"
    allowed = curl("--socks5-hostname", socks, f"http://allowed.test:{targets.http_port}/s")
    assert allowed.stdout == f"hello from allowed.test:{targets.http_port} /s\n"
    denied = curl("--socks5-hostname", socks, f"http://denied.test:{targets.http_port}/")
    assert denied.returncode != 0 and "(2)" in denied.stderr  # "not allowed by ruleset"


def test_host_loopback_and_private_addresses_are_always_refused(host_proxy, targets) -> None:
    host_proxy.set_rules([])
    for host in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "[::1]", "169.254.169.254"):
        status, body = through(host_proxy, f"http://{host}:{targets.http_port}/")
        assert status == 403, host
        assert "private, loopback or reserved address" in body
    status, body = through(host_proxy, f"http://localhost:{targets.http_port}/")
    assert status == 403 and "resolves only to private" in body


def test_raw_ip_needs_an_allowed_name_that_resolved_to_it() -> None:
    public = "93.184.215.14"
    running = HostProxy({"public.test": public, "blocked.test": "93.184.215.15"})
    try:
        running.set_rules([{"domain": "public.test", "action": "allow"}])
        before = running.proxy.verdict(public)
        assert not before.allowed and "no allowed name resolved to" in before.rule
        assert dns_query(running.dns_port, "public.test") == (0, [public])
        after = running.proxy.verdict(public)
        assert after.allowed and after.rule.startswith("resolved from public.test")
        assert dns_query(running.dns_port, "blocked.test")[0] == REFUSED
        assert not running.proxy.verdict("93.184.215.15").allowed
        running.set_rules([{"domain": "*", "action": "allow"},
                           {"domain": "public.test", "action": "deny"}])
        assert not running.proxy.verdict(public).allowed
    finally:
        running.close()


def test_dns_refuses_denied_names_and_resolves_allowed_ones(host_proxy) -> None:
    assert dns_query(host_proxy.dns_port, "allowed.test") == (0, ["127.0.0.1"])
    assert dns_query(host_proxy.dns_port, "allowed.test", qtype=28) == (0, [])
    assert dns_query(host_proxy.dns_port, "denied.test") == (REFUSED, [])
    assert dns_query(host_proxy.dns_port, "other.test") == (REFUSED, [])
    host_proxy.set_rules([{"domain": "*.invalid", "action": "allow"}])
    assert dns_query(host_proxy.dns_port, "no-such-name.invalid")[0] == NXDOMAIN


def test_policy_change_applies_to_the_next_connection_and_cuts_open_tunnels(
        host_proxy, targets) -> None:
    tunnel = socket.create_connection(("127.0.0.1", host_proxy.port), timeout=30)
    tunnel.sendall(f"CONNECT allowed.test:{targets.echo_port} HTTP/1.1\r\n\r\n".encode())
    assert tunnel.recv(4096).startswith(b"HTTP/1.1 200")
    tunnel.sendall(b"ping")
    assert tunnel.recv(4096) == b"ping"
    assert host_proxy.set_rules([{"domain": "allowed.test", "action": "deny"}]) == 1
    with pytest.raises(ConnectionError):
        tunnel.sendall(b"more")
        if tunnel.recv(4096) == b"":
            raise ConnectionResetError("closed by the proxy")
    tunnel.close()
    status, body = through(host_proxy, f"http://allowed.test:{targets.http_port}/")
    assert status == 403 and "rule 0 (allowed.test deny)" in body
    host_proxy.set_rules(POLICY)
    assert through(host_proxy, f"http://allowed.test:{targets.http_port}/")[0] == 200


def test_policy_change_keeps_tunnels_it_still_allows(host_proxy, targets) -> None:
    with socket.create_connection(("127.0.0.1", host_proxy.port), timeout=30) as tunnel:
        tunnel.sendall(f"CONNECT allowed.test:{targets.echo_port} HTTP/1.1\r\n\r\n".encode())
        assert tunnel.recv(4096).startswith(b"HTTP/1.1 200")
        assert host_proxy.set_rules([{"domain": "*.test", "action": "allow"}]) == 0
        tunnel.sendall(b"still here")
        assert tunnel.recv(4096) == b"still here"


def test_empty_rules_let_everything_through(host_proxy, targets) -> None:
    host_proxy.set_rules([])
    for name in NAMES:
        assert through(host_proxy, f"http://{name}:{targets.http_port}/")[0] == 200
    assert dns_query(host_proxy.dns_port, "denied.test") == (0, ["127.0.0.1"])


def test_denied_name_is_refused_before_any_lookup(host_proxy) -> None:
    status, body = through(host_proxy, "http://unresolvable.example/")
    assert status == 403 and "could not resolve" not in body


@pytest.mark.parametrize(("request_bytes", "status"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    (b"GET https://allowed.test/ HTTP/1.1\r\n\r\n", b"400"),
    (b"CONNECT allowed.test HTTP/1.1\r\n\r\n", b"400"),
    (b"GET http://bad_host!/ HTTP/1.1\r\n\r\n", b"400"),
    (b"nonsense\r\n\r\n", b"400"),
    (b"GET http://allowed.test/ HTTP/1.1\r\n" + b"X: " + b"y" * 70_000 + b"\r\n\r\n", b"431"),
], ids=["origin-form", "https-absolute", "connect-no-port", "bad-host", "nonsense", "huge"])
def test_malformed_requests_get_a_clear_4xx(host_proxy, request_bytes, status) -> None:
    with socket.create_connection(("127.0.0.1", host_proxy.port), timeout=30) as client:
        client.sendall(request_bytes)
        answer = client.recv(4096)
    assert answer.split(b" ")[1] == status, answer


def test_unreachable_allowed_target_is_502(host_proxy) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    status, body = through(host_proxy, f"http://allowed.test:{port}/")
    assert status == 502 and f"could not connect to allowed.test:{port}" in body


def test_handover_takes_only_a_listening_tcp_and_a_udp_socket(host_proxy) -> None:
    from sprites_jupyter.local.runtime.egress.bridge import GREETING
    from sprites_jupyter.local.runtime.egress.handover import HandoverError, take_over

    read_end, write_end = os.pipe()
    unbound = socket.socket()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for fds, expected in (([read_end, udp.fileno()], "not a socket"),
                              ([unbound.fileno(), udp.fileno()], "listening TCP socket"),
                              ([], "not a bridge handover")):
            server_end, bridge_end = socket.socketpair()
            with server_end, bridge_end:
                socket.send_fds(bridge_end, [GREETING], fds)
                bridge_end.shutdown(socket.SHUT_WR)
                with pytest.raises(HandoverError, match=expected):
                    host_proxy.run(take_over(host_proxy.proxy, server_end))
    finally:
        os.close(read_end)
        os.close(write_end)
        unbound.close()
        udp.close()


def test_connections_beyond_the_limit_wait_their_turn(targets) -> None:
    running = HostProxy({"allowed.test": "127.0.0.1"}, max_connections=1)
    connect = f"CONNECT allowed.test:{targets.echo_port} HTTP/1.1\r\n\r\n".encode()
    try:
        first = socket.create_connection(("127.0.0.1", running.port), timeout=30)
        first.sendall(connect)
        assert first.recv(4096).startswith(b"HTTP/1.1 200")
        with socket.create_connection(("127.0.0.1", running.port), timeout=1) as second:
            second.sendall(connect)
            with pytest.raises(TimeoutError):
                second.recv(4096)
            first.close()
            second.settimeout(30)
            assert second.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        running.close()
