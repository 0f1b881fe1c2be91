"""Network policy enforced from inside sandboxed sprites on a real local server.

The server is started with test-only host names (``allowed.test`` … mapped to loopback
servers this module starts); every check runs inside a sprite through the public exec
API, with curl and Python's urllib, as a user's program would.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sprites_jupyter.client import SpritesClient
from tests.conftest import LocalServer
from tests.local.egress_targets import Targets, egress_test_server, start_targets
from tests.local.ndjson import stream_events

NAMES = ["allowed.test", "denied.test", "other.test"]
POLICY = [{"domain": "allowed.test", "action": "allow"},
          {"domain": "denied.test", "action": "deny"}]
PROBE = Path(__file__).with_name("egress_probe.py")
IN_SPRITE_PROBE = "/home/sprite/egress_probe.py"
IN_SPRITE_CA = "/home/sprite/target-ca.pem"


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Targets]:
    running = start_targets(tmp_path_factory.mktemp("egress-targets"), NAMES)
    yield running
    running.close()


@pytest.fixture(scope="module")
def egress_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server of its own whose proxies know the test names."""
    running = egress_test_server(tmp_path_factory.mktemp("egress-home"),
                                 " ".join(f"{name}=127.0.0.1" for name in NAMES))
    yield running
    running.stop()


class InSprite:
    """A fresh sprite on the egress server, with the probe and the targets' CA inside."""

    def __init__(self, server: LocalServer, http: httpx.Client, targets: Targets) -> None:
        self.http = http
        self.name = f"e-{uuid.uuid4().hex[:10]}"
        assert http.post("/v1/sprites", json={"name": self.name}).status_code == 201
        for path, data in ((IN_SPRITE_PROBE, PROBE.read_bytes()),
                           (IN_SPRITE_CA, targets.ca_file.read_bytes())):
            written = http.put(f"/v1/sprites/{self.name}/fs/write", content=data,
                               params={"path": path, "workingDir": "/"})
            assert written.status_code < 300, written.text
        self.sprite = SpritesClient(server.token, server.url, timeout=120).sprite(self.name)

    def set_policy(self, rules: list[dict[str, str]]) -> None:
        answer = self.http.post(f"/v1/sprites/{self.name}/policy/network",
                                json={"rules": rules})
        assert answer.status_code == 204, answer.text

    def run(self, *argv: str) -> tuple[int, str, str]:
        done = self.sprite.run(*argv, timeout=120)
        return done.exit_code, done.stdout, done.stderr

    def probe(self, *args: str) -> dict:
        code, out, err = self.run("python3", IN_SPRITE_PROBE, *args)
        assert code == 0, err
        return json.loads(out)

    def delete(self) -> None:
        self.http.delete(f"/v1/sprites/{self.name}")


@pytest.fixture
def inside(egress_server: LocalServer, targets: Targets) -> Iterator[InSprite]:
    with egress_server.http() as http:
        sprite = InSprite(egress_server, http, targets)
        sprite.set_policy(POLICY)
        yield sprite
        sprite.delete()


def test_every_process_gets_the_proxy_variables(inside) -> None:
    code, out, _ = inside.run("sh", "-c", "echo $HTTPS_PROXY $http_proxy $ALL_PROXY $NO_PROXY")
    assert code == 0
    assert out.split() == ["http://127.0.0.1:3128"] * 3 + ["localhost,127.0.0.1"]


def test_a_service_reaches_allowed_names_through_the_proxy(inside, targets) -> None:
    script = (f"python3 {IN_SPRITE_PROBE} fetch http://allowed.test:{targets.http_port}/svc "
              "> /home/sprite/svc.json.tmp && mv /home/sprite/svc.json.tmp /home/sprite/svc.json"
              " && exec sleep 600")
    started = inside.http.put(f"/v1/sprites/{inside.name}/services/fetcher",
                              params={"duration": "0"}, json={"cmd": "sh", "args": ["-c", script]})
    assert started.status_code == 200, started.text
    deadline = time.monotonic() + 60
    while True:
        answer = inside.http.get(f"/v1/sprites/{inside.name}/fs/read",
                                 params={"path": "/home/sprite/svc.json", "workingDir": "/"})
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer.status_code == 200, "the service never wrote its result"
    assert json.loads(answer.content)["status"] == 200


def test_allowed_name_reached_with_urllib_and_curl(inside, targets) -> None:
    plain = inside.probe("fetch", f"http://allowed.test:{targets.http_port}/u")
    assert plain == {"status": 200, "body": f"hello from allowed.test:{targets.http_port} /u\n"}
    secure = inside.probe("fetch", f"https://allowed.test:{targets.https_port}/s", IN_SPRITE_CA)
    assert secure["status"] == 200
    if shutil.which("curl"):
        code, out, err = inside.run("curl", "-sS", "--cacert", IN_SPRITE_CA,
                                    f"https://allowed.test:{targets.https_port}/curl")
        assert (code, out) == (0, f"hello from allowed.test:{targets.https_port} /curl\n"), err


def test_denied_name_gets_the_403_that_says_why_and_how(inside, targets) -> None:
    denied = inside.probe("fetch", f"http://denied.test:{targets.http_port}/")
    assert denied["status"] == 403
    assert "denied.test is denied: rule 1 (denied.test deny)" in denied["body"]
    assert "%sprite policy allow denied.test" in denied["body"]
    unlisted = inside.probe("fetch", f"https://other.test:{targets.https_port}/", IN_SPRITE_CA)
    assert unlisted["status"] == 0 and "403" in unlisted["body"]
    if shutil.which("curl"):
        code, out, _ = inside.run("curl", "-sS", f"http://denied.test:{targets.http_port}/")
        assert code == 0 and "%sprite policy allow denied.test" in out


def test_dns_refuses_denied_names(inside) -> None:
    assert inside.probe("dns", "denied.test") == {"rcode": 5, "answers": 0}
    assert inside.probe("dns", "other.test") == {"rcode": 5, "answers": 0}
    assert inside.probe("dns", "allowed.test") == {"rcode": 0, "answers": 1}
    assert "error" in inside.probe("resolve", "denied.test")


def test_ip_literals_and_the_servers_own_port_are_unreachable(inside, egress_server,
                                                              targets) -> None:
    port = egress_server.url.rsplit(":", 1)[1]
    assert inside.probe("connect", "127.0.0.1", port)["connected"] is False
    assert inside.probe("connect", "127.0.0.1", str(targets.http_port))["connected"] is False
    for url in (f"{egress_server.url}/v1/sprites", "http://93.184.215.14/"):
        code, out, _ = inside.run("env", "NO_PROXY=", "no_proxy=", "python3", IN_SPRITE_PROBE,
                                  "fetch", url)
        answer = json.loads(out)
        assert code == 0 and answer["status"] == 403, answer
    assert "private, loopback or reserved" in json.loads(inside.run(
        "env", "NO_PROXY=", "no_proxy=", "python3", IN_SPRITE_PROBE, "fetch",
        f"{egress_server.url}/v1/sprites")[1])["body"]


def test_policy_change_applies_to_the_next_connection_and_cuts_open_tunnels(
        inside, targets) -> None:
    tunnel = inside.sprite.command("python3", IN_SPRITE_PROBE, "tunnel", "allowed.test",
                                   str(targets.echo_port))
    output = ""
    for chunk in tunnel:
        output += chunk.data.decode()
        if "\n" in output:
            break
    assert json.loads(output) == {"open": "HTTP/1.1 200 Connection established",
                                  "echo": "first"}
    inside.set_policy([{"domain": "allowed.test", "action": "deny"}])
    tunnel.write("go\n")
    rest = "".join(chunk.data.decode() for chunk in tunnel)
    assert tunnel.wait(timeout=60) == 0
    assert json.loads(rest)["after"] != "second"
    assert inside.probe("fetch", f"http://allowed.test:{targets.http_port}/")["status"] == 403
    inside.set_policy(POLICY)
    assert inside.probe("fetch", f"http://allowed.test:{targets.http_port}/")["status"] == 200


def test_two_sprites_are_enforced_independently(inside, egress_server, targets) -> None:
    with egress_server.http() as http:
        other = InSprite(egress_server, http, targets)
        try:
            other.set_policy([{"domain": "denied.test", "action": "allow"}])
            url = f"http://denied.test:{targets.http_port}/"
            assert other.probe("fetch", url)["status"] == 200
            assert inside.probe("fetch", url)["status"] == 403
        finally:
            other.delete()


def test_empty_rules_let_everything_through_the_proxy(inside, targets) -> None:
    inside.set_policy([])
    for name in NAMES:
        assert inside.probe("fetch", f"http://{name}:{targets.http_port}/")["status"] == 200
    assert inside.probe("dns", "denied.test") == {"rcode": 0, "answers": 1}


def test_a_restore_brings_back_the_policy_it_checkpointed(inside, targets) -> None:
    status, events = stream_events(inside.http, "POST", f"/v1/sprites/{inside.name}/checkpoint",
                                   json={})
    assert status == 200 and events[-1]["type"] == "complete", events
    checkpoint = events[-1]["data"].split()[1]
    inside.set_policy([{"domain": "denied.test", "action": "allow"}])
    assert inside.probe("fetch", f"http://allowed.test:{targets.http_port}/")["status"] == 403
    status, events = stream_events(
        inside.http, "POST", f"/v1/sprites/{inside.name}/checkpoints/{checkpoint}/restore")
    assert status == 200 and events[-1]["type"] == "complete", events
    assert inside.probe("fetch", f"http://allowed.test:{targets.http_port}/")["status"] == 200
    assert inside.probe("fetch", f"http://denied.test:{targets.http_port}/")["status"] == 403


def _host_only_names() -> list[str]:
    """Dotless names the host's /etc/hosts gives (its own host name, say): no public DNS
    name is dotless, so real DNS knows none of them."""
    try:
        lines = Path("/etc/hosts").read_text().splitlines()
    except OSError:
        return []
    names = {name.lower() for line in lines for name in line.split("#")[0].split()[1:]}
    return sorted(name for name in names if "." not in name and name != "localhost")


@pytest.fixture(params=["as-tests-user", "as-other-user"])
def open_inside(request: pytest.FixtureRequest, targets: Targets) -> Iterator[InSprite]:
    """A fresh sprite under an open policy, on the egress server (the tests' user: root
    in CI) or on a server run as an ordinary user (``tests/local/conftest.py``)."""
    server = request.getfixturevalue("egress_server" if request.param == "as-tests-user"
                                     else "local")
    with server.http() as http:
        sprite = InSprite(server, http, targets)
        sprite.set_policy([])
        yield sprite
        sprite.delete()


def test_an_open_policy_does_not_tell_the_hosts_private_names(open_inside: InSprite) -> None:
    names = _host_only_names()
    if not names:
        pytest.skip("the host's /etc/hosts has no dotless name but localhost")
    inside = open_inside
    for name in names:
        answer = inside.probe("dns", name)
        assert answer["answers"] == 0 and answer["rcode"] in (2, 3), (name, answer)
    assert inside.probe("dns", "localhost") == {"rcode": 0, "answers": 1}
    assert inside.probe("resolve", inside.name) == {"addresses": ["127.0.1.1"]}
