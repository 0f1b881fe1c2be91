"""The bridge hands a network namespace's sockets to the server's proxy: from inside a
namespace with loopback only (made here with ``unshare``, as the sandbox makes one),
curl and urllib reach allowed names, denied ones fail fast, DNS answers REFUSED."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from sprites_jupyter.local.runtime.egress import bridge
from sprites_jupyter.local.runtime.egress.handover import HandoverError
from sprites_jupyter.local.runtime.egress.sprite_egress import SpriteEgress
from tests.local.egress_targets import Targets, start_targets
from tests.local.test_egress_proxy import NAMES, POLICY

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


HOLD_DNS_PORT = ("import os, socket, sys; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); "
                 "s.bind(('127.0.0.1', 53)); os.set_inheritable(s.fileno(), True); "
                 "print('ready', flush=True); os.execvp(sys.argv[1], sys.argv[1:])")
"""Say ready, then run a command holding UDP port 53 (the socket survives the exec)."""


class LoopThread:
    """An event loop in a thread, as the server's."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


class Namespace:
    """A user, mount and network namespace with loopback only (as the sandbox makes one),
    held open by a sleeping process; probes run inside with ``nsenter``."""

    def __init__(self, tmp_path: Path, *, dns_port_taken: bool = False) -> None:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.1\n")
        then = (f'exec {sys.executable} -c "$HOLD" sleep 600' if dns_port_taken
                else "echo ready && exec sleep 600")
        setup = f"ip link set lo up && mount --bind {resolv} /etc/resolv.conf && {then}"
        self.process = subprocess.Popen(["unshare", "-rmn", "sh", "-c", setup],
                                        stdout=subprocess.PIPE, text=True,
                                        env={**os.environ, "HOLD": HOLD_DNS_PORT})
        assert self.process.stdout is not None
        assert self.process.stdout.readline() == "ready\n"

    @property
    def netns(self) -> str:
        return f"/proc/{self.process.pid}/ns/net"

    def command(self, *args: str) -> list[str]:
        return ["nsenter", "-t", str(self.process.pid), "-U", "-n", "-m",
                "--preserve-credentials", *args]

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def probe(self, *args: str, env: dict[str, str] | None = None) -> dict:
        done = subprocess.run(self.command(sys.executable, str(PROBE), *args),
                              capture_output=True, text=True, timeout=120,
                              env={**os.environ, **PROXY_ENV, **(env or {})})
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    running = start_targets(tmp_path_factory.mktemp("egress-targets"), NAMES)
    yield running
    running.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    running = LoopThread()
    yield running
    running.close()


@pytest.fixture
def namespace(tmp_path: Path, loop: LoopThread) -> Iterator[tuple[SpriteEgress, Namespace]]:
    policy = tmp_path / "network.json"
    policy.write_text(json.dumps({"rules": POLICY}))
    egress = SpriteEgress("ns-test", policy, {name: "127.0.0.1" for name in NAMES})
    inside = Namespace(tmp_path)
    loop.run(egress.start(inside.netns))
    yield egress, inside
    loop.run(egress.close())
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


async def _apply(egress: SpriteEgress, rules: list[dict[str, str]]) -> int:
    return egress.set_rules(rules)


def test_policy_change_cuts_an_open_tunnel_inside(namespace, loop, targets) -> None:
    egress, inside = namespace
    process = subprocess.Popen(
        inside.command(sys.executable, str(PROBE), "tunnel", "allowed.test",
                       str(targets.echo_port)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, **PROXY_ENV})
    assert process.stdout is not None and process.stdin is not None
    opened = json.loads(process.stdout.readline())
    assert opened == {"open": "HTTP/1.1 200 Connection established", "echo": "first"}
    assert loop.run(_apply(egress, [{"domain": "allowed.test", "action": "deny"}])) == 1
    process.stdin.write("go\n")
    process.stdin.flush()
    after = json.loads(process.stdout.readline())
    process.wait(timeout=30)
    assert after["after"] != "second"


def test_bridge_failure_says_why(tmp_path, loop) -> None:
    egress = SpriteEgress("ns-test", tmp_path / "no-policy.json")
    inside = Namespace(tmp_path, dns_port_taken=True)
    try:
        with pytest.raises(HandoverError, match=r"cannot bind 127\.0\.0\.1:3128/53"):
            loop.run(egress.start(inside.netns))
    finally:
        loop.run(egress.close())
        inside.close()
