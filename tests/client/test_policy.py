"""Network policy through the client: rules are sent as given, the server validates them."""

from __future__ import annotations

import pytest

from sprites_jupyter.client import InvalidRequest, NetworkPolicy, PolicyRule, Sprite


def test_default_policy_is_empty(sp: Sprite) -> None:
    assert sp.get_network_policy() == NetworkPolicy(rules=())


def test_set_and_get_round_trip(sp: Sprite) -> None:
    rules = [PolicyRule(include="defaults"), {"domain": "Example.com", "action": "ALLOW"},
             PolicyRule(domain="*.blocked.com", action="deny")]
    sp.set_network_policy(rules)
    assert sp.get_network_policy().rules == (
        PolicyRule(include="defaults"), PolicyRule(domain="example.com", action="allow"),
        PolicyRule(domain="*.blocked.com", action="deny"))
    sp.set_network_policy([])
    assert sp.get_network_policy().rules == ()


@pytest.mark.parametrize(("rule", "message"), [
    ({"domain": "a.com"}, "action"),
    ({"domain": "a.com", "action": "maybe"}, "action"),
    ({"include": "everything"}, "defaults"),
    ({"domain": "a.com", "include": "defaults", "action": "allow"}, "exactly one"),
    ({"action": "allow"}, "exactly one"),
    ({"domain": "a.com", "action": "allow", "port": 80}, "unknown"),
    ({"domain": " ", "action": "allow"}, "domain"),
])
def test_invalid_rules_are_refused_by_the_server_in_one_line(sp: Sprite, rule: dict,
                                                             message: str, server) -> None:
    sp.set_network_policy([{"domain": "kept.com", "action": "allow"}])
    with pytest.raises(InvalidRequest, match=message):
        sp.set_network_policy([rule])
    assert sp.get_network_policy().rules == (PolicyRule(domain="kept.com", action="allow"),)
    with server.http() as raw:
        answer = raw.post(f"/v1/sprites/{sp.name}/policy/network", json={"rules": [rule]})
    assert answer.status_code == 400, "the server must refuse what the client refuses"


def test_rules_must_be_a_list(sp: Sprite) -> None:
    with pytest.raises(ValueError, match="list of rules"):
        sp.set_network_policy({"rules": []})
