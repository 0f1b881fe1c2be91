"""A name that resolves to a private or reserved address (a company mirror, devpi on
10.x): the proxy's status line says so, as pip shows it; ``%sprite policy check`` agrees;
``--allow-private-hosts`` lets it through, never to the host's loopback. The server maps
the names with its test-only resolver (``SPRITES_LOCAL_EGRESS_TEST_HOSTS``)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import LocalServer
from tests.local.egress_targets import egress_test_server
from tests.magics.conftest import Shell

RESERVED = "203.0.113.80"

# What pip does through the proxy (http.client's tunnel), printing what pip would print.
TUNNEL = """
import http.client, os, sys, urllib.parse
proxy = urllib.parse.urlsplit(os.environ["https_proxy"])
connection = http.client.HTTPConnection(proxy.hostname, proxy.port, timeout=30)
connection.set_tunnel(sys.argv[1], int(sys.argv[2]))
try:
    connection.connect()
    print("tunnel open")
except OSError as error:
    print(error)
"""


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    running = egress_test_server(
        tmp_path_factory.mktemp("private-hosts-home"),
        f"mirror.test={RESERVED} allowed-mirror.test={RESERVED}",
        args=("--allow-private-hosts", "allowed-mirror.test,127.0.0.0/8"))
    yield running
    running.stop()


@pytest.fixture
def pip_ip(private_server: LocalServer, shell_on: Callable[[LocalServer], Shell]
           ) -> Iterator[Shell]:
    shell = shell_on(private_server)
    name = f"t-{uuid.uuid4().hex[:10]}"
    shell.ok(f"%sprite use {name} --create")
    try:
        yield shell
    finally:
        shell.shell.run_cell(f"%sprite destroy {name} --yes")


def _tunnel(ip: Shell, host: str, port: int = 443) -> str:
    result = ip.magics.context.sprite().run("python3", "-c", TUNNEL, host, str(port))
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


def _check(ip: Shell, capsys: pytest.CaptureFixture[str], target: str) -> str:
    capsys.readouterr()
    ip.ok(f"%sprite policy check {target}")
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_the_status_line_names_the_reserved_address_and_check_agrees(pip_ip, capsys):
    assert _tunnel(pip_ip, "mirror.test") == (
        f"Tunnel connection failed: 403 Forbidden: mirror.test resolves only to private or "
        f"reserved addresses ({RESERVED}); see sprites-local serve --allow-private-hosts")
    line = _check(pip_ip, capsys, "mirror.test")
    assert line.startswith(f"mirror.test is blocked: mirror.test resolves only to private, "
                           f"loopback or reserved addresses ({RESERVED})"), line
    assert "--allow-private-hosts mirror.test" in line


def test_a_policy_refusal_says_policy_in_the_status_line(pip_ip, capsys):
    pip_ip.ok("%sprite policy allow pypi.org")
    assert _tunnel(pip_ip, "mirror.test") == (
        "Tunnel connection failed: 403 Forbidden by the sprite's network policy: mirror.test "
        "is denied (no matching rule (rules are set, so the rest is denied))")
    assert _check(pip_ip, capsys, "mirror.test").startswith("mirror.test is denied: no matching")


def test_an_allowed_private_host_passes_but_never_loopback(pip_ip, capsys):
    through = _tunnel(pip_ip, "allowed-mirror.test")
    assert "403" not in through and "Forbidden" not in through, through
    assert _check(pip_ip, capsys, "allowed-mirror.test").startswith(
        "allowed-mirror.test is allowed: no rules (unrestricted)")
    assert _tunnel(pip_ip, "127.0.0.1", 8080) == (
        "Tunnel connection failed: 403 Forbidden: 127.0.0.1 is a private, loopback or "
        "reserved address")


def test_a_bad_allow_private_hosts_value_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sprites_jupyter.local", "serve", "--home", str(tmp_path),
         "--allow-private-hosts", "mirror.corp not_a_host!"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and done.stdout == ""
    assert done.stderr.strip() == (
        "sprites-local: --allow-private-hosts: 'not_a_host!' is neither a host name nor an "
        "address or CIDR (e.g. mirror.corp, *.corp, 10.1.0.0/16)")
