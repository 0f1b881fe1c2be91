"""``%sprite policy check``: the verdict of the sprite's stored rules, by the proxy's
matcher; and the note an unsandboxed local server's ``%sprite policy`` prints."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from sprites_jupyter.client import SpritesClient
from tests.conftest import LocalServer, start_server
from tests.magics.conftest import Shell

NOTE = "so these rules are stored but not enforced."


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.splitlines()[-1] + "\n"


def test_check_names_the_deciding_rule(ip, current, capsys):
    ip.ok("%sprite policy check anything.example")
    assert last_line(capsys) == "anything.example is allowed: no rules (unrestricted)\n"
    ip.ok("%sprite policy allow *.example.com")
    ip.ok("%sprite policy deny api.example.com")
    capsys.readouterr()
    ip.ok("%sprite policy check https://Example.com/path?q=1")
    assert last_line(capsys) == "example.com is allowed: rule 0 (*.example.com allow)\n"
    ip.ok("%sprite policy check api.example.com")
    assert last_line(capsys) == (
        "api.example.com is denied: rule 1 (api.example.com deny) "
        "(to allow it: %sprite policy allow api.example.com)\n")
    ip.ok("%sprite policy check pypi.org")
    assert last_line(capsys).startswith("pypi.org is denied: no matching rule")


def test_check_defaults_bundle_and_raw_ips(ip, current, capsys):
    ip.shell.user_ns["rules"] = [{"include": "defaults"}]
    ip.ok("%sprite policy set rules")
    capsys.readouterr()
    ip.ok("%sprite policy check files.pythonhosted.org")
    assert last_line(capsys) == (
        "files.pythonhosted.org is allowed: rule 0 (include defaults: "
        "files.pythonhosted.org allow)\n")
    ip.ok("%sprite policy check http://10.0.0.1:8080/")
    assert last_line(capsys).startswith("10.0.0.1 is a raw IP address")


def test_check_without_a_host_is_one_line(ip, current):
    assert "names no host" in ip.fails("%sprite policy check http://")
    assert "DOMAIN_OR_URL" in ip.fails("%sprite policy check")


def test_a_sandboxed_backend_prints_no_note(ip, current, server, capsys):
    ip.ok("%sprite policy")
    sandboxed = SpritesClient(server.token, server.url).local_isolation() == "sandbox"
    assert (NOTE in capsys.readouterr().out) is not sandboxed


@pytest.fixture(scope="module")
def unsandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    running = start_server(tmp_path_factory.mktemp("unsandboxed-home"),
                           args=["--isolation", "none"])
    yield running
    running.stop()


def test_an_unsandboxed_backend_says_rules_are_not_enforced(unsandboxed, monkeypatch, capsys):
    monkeypatch.setenv("SPRITES_API_URL", unsandboxed.url)
    monkeypatch.setenv("SPRITES_TOKEN", unsandboxed.token)
    shell = InteractiveShell.instance()
    shell.config.pop("SpriteMagics", None)
    shell.run_line_magic("load_ext", "sprites_jupyter")
    try:
        ip = Shell(shell)
        name = f"t-{uuid.uuid4().hex[:10]}"
        ip.ok(f"%sprite create {name}")
        ip.ok(f"%sprite use {name}")
        capsys.readouterr()
        ip.ok("%sprite policy deny example.com")
        out = capsys.readouterr().out
        assert out.count(NOTE) == 1
        assert "local server runs sprites unsandboxed: --isolation none" in out
        ip.ok(f"%sprite destroy {name} --yes")
    finally:
        shell.run_line_magic("unload_ext", "sprites_jupyter")
        shell.config.pop("SpriteMagics", None)
