"""``%sprite policy check``: the verdict of the sprite's stored rules, by the proxy's matcher."""

from __future__ import annotations


def test_check_names_the_deciding_rule(ip, current, capsys):
    ip.ok("%sprite policy check anything.example")
    assert capsys.readouterr().out == "anything.example is allowed: no rules (unrestricted)\n"
    ip.ok("%sprite policy allow *.example.com")
    ip.ok("%sprite policy deny api.example.com")
    capsys.readouterr()
    ip.ok("%sprite policy check https://Example.com/path?q=1")
    assert capsys.readouterr().out == "example.com is allowed: rule 0 (*.example.com allow)\n"
    ip.ok("%sprite policy check api.example.com")
    assert capsys.readouterr().out == (
        "api.example.com is denied: rule 1 (api.example.com deny) "
        "(to allow it: %sprite policy allow api.example.com)\n")
    ip.ok("%sprite policy check pypi.org")
    assert "pypi.org is denied: no matching rule" in capsys.readouterr().out


def test_check_defaults_bundle_and_raw_ips(ip, current, capsys):
    ip.shell.user_ns["rules"] = [{"include": "defaults"}]
    ip.ok("%sprite policy set rules")
    capsys.readouterr()
    ip.ok("%sprite policy check files.pythonhosted.org")
    assert capsys.readouterr().out == (
        "files.pythonhosted.org is allowed: rule 0 (include defaults: "
        "files.pythonhosted.org allow)\n")
    ip.ok("%sprite policy check http://10.0.0.1:8080/")
    assert "10.0.0.1 is a raw IP address" in capsys.readouterr().out


def test_check_without_a_host_is_one_line(ip, current):
    assert "names no host" in ip.fails("%sprite policy check http://")
    assert "DOMAIN_OR_URL" in ip.fails("%sprite policy check")
