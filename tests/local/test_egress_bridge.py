"""The bridge hands a network namespace's sockets to the server's proxy: from inside a
namespace with loopback only (made here with ``unshare``, as the sandbox makes one),
curl and urllib reach allowed names, denied ones fail fast, DNS answers REFUSED."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sprites_jupyter.local.runtime.egress import bridge
from sprites_jupyter.local.runtime.egress.handover import take_over
from tests.local.egress_targets import Targets, start_targets
from tests.local.test_egress_proxy import NAMES, HostProxy

PROBE = Path(__file__).with_name("egress_probe.py")
PROXY = f"http://127.0.0.1:{bridge.PROXY_PORT}"
PROXY_ENV = {"HTTP_PROXY": PROXY, "HTTPS_PROXY": PROXY, "http_proxy": PROXY,
             "https_proxy": PROXY, "NO_PROXY": "localhost,127.0.0.1"}


def _namespaces_available() -> bool:
    if not all(shutil.which(tool) for tool in ("unshare", "nsenter", "ip")):
        return False
    done = subprocess.run(["unshare", "-rmn", "true"], capture_output=True)
    return done.returncode == 0


pytestmark = pytest.mark.skipif(not _namespaces_available(),
                                reason="needs unshare/nsenter/ip and user namespaces")


class Namespace:
    """A network namespace with the bridge running in it, and a way to run probes there."""

    def __init__(self, tmp_path: Path, host: HostProxy) -> None:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        self.server_end, bridge_end = socket.socketpair()
        script = (f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && "
                  f"exec {sys.executable} {bridge.__file__} {bridge_end.fileno()}")
        self.process = subprocess.Popen(["unshare", "-rmn", "sh", "-c", script],
                                        stdout=subprocess.PIPE, text=True,
                                        pass_fds=[bridge_end.fileno()])
        bridge_end.close()
        host.run(take_over(host.proxy, self.server_end))
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "egress bridge: ready", line

    def command(self, *args: str) -> list[str]:
        return ["nsenter", "-t", str(self.process.pid), "-U", "-n", "-m",
                "--preserve-credentials", *args]

    def probe(self, *args: str, env: dict[str, str] | None = None) -> dict:
        done = subprocess.run(self.command(sys.executable, str(PROBE), *args),
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, **PROXY_ENV, **(env or {})})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def close(self) -> None:
        self.server_end.close()
        assert self.process.wait(timeout=30) == 0


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    running = start_targets(tmp_path_factory.mktemp("egress-targets"), NAMES)
    yield running
    running.close()


@pytest.fixture
def namespace(tmp_path: Path) -> Iterator[tuple[HostProxy, Namespace]]:
    host = HostProxy({name: "127.0.0.1" for name in NAMES})
    inside = Namespace(tmp_path, host)
    yield host, inside
    host.close()
    inside.close()


def test_allowed_reached_denied_refused_from_inside(namespace, targets) -> None:
    _, inside = namespace
    allowed = inside.probe("fetch", f"http://allowed.test:{targets.http_port}/in")
    assert allowed == {"status": 200, "body": f"hello from allowed.test:{targets.http_port} /in\n"}
    denied = inside.probe("fetch", f"http://denied.test:{targets.http_port}/")
    assert denied["status"] == 403 and "%sprite policy allow denied.test" in denied["body"]
    secure = inside.probe("fetch", f"https://allowed.test:{targets.https_port}/s",
                          str(targets.ca_file))
    assert secure["status"] == 200
    if shutil.which("curl"):
        done = subprocess.run(
            inside.command("curl", "-sS", "--cacert", str(targets.ca_file),
                           f"https://allowed.test:{targets.https_port}/curl"),
            capture_output=True, text=True, timeout=120, env={**os.environ, **PROXY_ENV})
        assert done.stdout == f"hello from allowed.test:{targets.https_port} /curl\n"


def test_dns_inside_refuses_denied_names(namespace) -> None:
    _, inside = namespace
    assert inside.probe("dns", "denied.test") == {"rcode": 5, "answers": 0}
    assert inside.probe("dns", "allowed.test") == {"rcode": 0, "answers": 1}
    assert "error" in inside.probe("resolve", "denied.test")


def test_no_way_out_but_the_proxy(namespace, targets) -> None:
    _, inside = namespace
    direct = inside.probe("connect", "127.0.0.1", str(targets.http_port))
    assert direct["connected"] is False
    through_ip = inside.probe("fetch", f"http://127.0.0.1:{targets.http_port}/",
                              env={"NO_PROXY": ""})
    assert through_ip["status"] == 403 and "private, loopback" in through_ip["body"]


def test_policy_change_cuts_an_open_tunnel_inside(namespace, targets) -> None:
    host, inside = namespace
    process = subprocess.Popen(
        inside.command(sys.executable, str(PROBE), "tunnel", "allowed.test",
                       str(targets.echo_port)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, **PROXY_ENV})
    assert process.stdout is not None and process.stdin is not None
    opened = json.loads(process.stdout.readline())
    assert opened == {"open": "HTTP/1.1 200 Connection established", "echo": "first"}
    assert host.set_rules([{"domain": "allowed.test", "action": "deny"}]) == 1
    process.stdin.write("go\n")
    process.stdin.flush()
    after = json.loads(process.stdout.readline())
    process.wait(timeout=30)
    assert after["after"] != "second"
