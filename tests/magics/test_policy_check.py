"""``%sprite policy check``: the verdict of the sprite's stored rules, by the proxy's
matcher; and the note an unsandboxed local server's ``%sprite policy`` prints."""

from __future__ import annotations

import uuid

import pytest

from sprites_jupyter.client import SpritesClient

NOTE = "so these rules are stored but not enforced."


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.splitlines()[-1] + "\n"


def allowed_by_rule(line: str, host: str, rule: str) -> bool:
    """Whether ``line`` says the rules allow ``host`` by ``rule``. Where the network maps a
    real name to a reserved address (some CI sandboxes do), the proxy refuses it and the
    check says that instead, which is the truth there."""
    return line.startswith(f"{host} is allowed: {rule}") or line.startswith(
        f"{host} is blocked: {host} resolves only to private, loopback or reserved")


def test_check_names_the_deciding_rule(ip, current, capsys):
    ip.ok("%sprite policy check anything.example")
    assert last_line(capsys).startswith("anything.example is allowed: no rules (unrestricted)")
    ip.ok("%sprite policy allow *.example.com")
    ip.ok("%sprite policy deny api.example.com")
    capsys.readouterr()
    ip.ok("%sprite policy check https://Example.com/path?q=1")
    assert allowed_by_rule(last_line(capsys), "example.com", "rule 0 (*.example.com allow)")
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
    assert allowed_by_rule(last_line(capsys), "files.pythonhosted.org",
                           "rule 0 (include defaults: files.pythonhosted.org allow)")
    ip.ok("%sprite policy check http://10.0.0.1:8080/")
    assert last_line(capsys).startswith("10.0.0.1 is a raw IP address")


def test_an_unresolvable_allowed_name_is_allowed_but_unreachable(ip, current, capsys):
    """The sprite's proxy is asked (where it has one), so a name that does not resolve is
    not reported as simply allowed."""
    sandboxed = ip.magics.context.client.local_isolation() == "sandbox"
    ip.ok("%sprite policy check no-such-host.invalid")
    line = last_line(capsys)
    assert line.startswith("no-such-host.invalid is allowed: no rules (unrestricted)")
    assert ("but the sprite cannot reach it now: could not resolve" in line) is sandboxed, line


def test_an_empty_policy_says_unrestricted_and_bad_domains_are_refused(ip, current, capsys):
    frame = ip.ok("%sprite policy")
    assert frame.empty
    assert "No rules: the sprite may reach any public host (unrestricted)." in \
        capsys.readouterr().out
    for bad in ("not_a_domain!", "a..b", "x-.com", "http://pypi.org"):
        assert ip.fails(f"%sprite policy allow {bad}").startswith(
            f"%sprite policy allow: '{bad}' is not a domain: use a host name (pypi.org)")
    assert "is an IP address" in ip.fails("%sprite policy deny 10.0.0.1")
    ip.ok("%sprite policy allow *.pythonhosted.org")
    ip.ok("%sprite policy allow PyPI.org")
    assert set(ip.ok("%sprite policy")["domain"]) >= {"*.pythonhosted.org"}
    assert "unrestricted" not in capsys.readouterr().out


def test_check_without_a_host_is_one_line(ip, current):
    assert "names no host" in ip.fails("%sprite policy check http://")
    assert "DOMAIN_OR_URL" in ip.fails("%sprite policy check")


def test_a_sandboxed_backend_prints_no_note(ip, current, server, capsys):
    ip.ok("%sprite policy")
    sandboxed = SpritesClient(server.token, server.url).local_isolation() == "sandbox"
    assert (NOTE in capsys.readouterr().out) is not sandboxed


def test_an_unsandboxed_backend_says_rules_are_not_enforced(unsandboxed_server, shell_on,
                                                            capsys):
    ip = shell_on(unsandboxed_server)
    name = f"t-{uuid.uuid4().hex[:10]}"
    ip.ok(f"%sprite create {name}")
    ip.ok(f"%sprite use {name}")
    capsys.readouterr()
    ip.ok("%sprite policy deny example.com")
    out = capsys.readouterr().out
    assert out.count(NOTE) == 1
    assert "local server runs sprites unsandboxed: --isolation none" in out
    ip.ok(f"%sprite destroy {name} --yes")
