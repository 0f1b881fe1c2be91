"""The policy matcher shared by the egress proxy and ``%sprite policy check``."""

from __future__ import annotations

import pytest

from sprites_jupyter.policy_rules import DEFAULT_DOMAINS, decide, unrestricted


def allow(domain: str) -> dict[str, str]:
    return {"domain": domain, "action": "allow"}


def deny(domain: str) -> dict[str, str]:
    return {"domain": domain, "action": "deny"}


def test_no_rules_is_unrestricted() -> None:
    verdict = decide([], "anything.example")
    assert verdict.allowed and verdict.rule == "no rules (unrestricted)"
    assert unrestricted([]) and not unrestricted([deny("x.com")])


def test_rules_set_deny_what_no_rule_allows() -> None:
    verdict = decide([allow("pypi.org")], "example.com")
    assert not verdict.allowed
    assert "no matching rule" in verdict.rule


def test_exact_beats_wildcard_beats_star_whatever_the_order() -> None:
    rules = [allow("*"), deny("*.example.com"), allow("api.example.com")]
    assert decide(rules, "api.example.com").rule == "rule 2 (api.example.com allow)"
    assert not decide(rules, "www.example.com").allowed
    assert decide(rules, "other.org").rule == "rule 0 (* allow)"
    reordered = [allow("api.example.com"), allow("*"), deny("*.example.com")]
    assert decide(reordered, "api.example.com").allowed
    assert not decide(reordered, "a.b.example.com").allowed


def test_subdomain_wildcard_covers_the_bare_domain_and_any_depth_only() -> None:
    rules = [allow("*.example.com")]
    assert decide(rules, "example.com").allowed
    assert decide(rules, "a.b.c.example.com").allowed
    assert not decide(rules, "badexample.com").allowed
    assert not decide(rules, "example.com.evil.org").allowed


def test_first_rule_wins_within_a_tier() -> None:
    assert not decide([deny("x.org"), allow("x.org")], "x.org").allowed
    assert decide([allow("*.x.org"), deny("*.b.x.org")], "a.b.x.org").rule == (
        "rule 0 (*.x.org allow)")


def test_names_compare_case_and_trailing_dot_insensitively() -> None:
    verdict = decide([{"domain": " PyPI.org ", "action": "ALLOW"}], "pypi.ORG.")
    assert verdict.allowed and verdict.domain == "pypi.org"


@pytest.mark.parametrize("domain", ["github.com", "pypi.org", "files.pythonhosted.org",
                                    "registry.npmjs.org", "x.googleapis.com",
                                    "api.anthropic.com"])
def test_defaults_bundle_allows_common_developer_domains(domain: str) -> None:
    verdict = decide([{"include": "defaults"}], domain)
    assert verdict.allowed
    assert verdict.rule.startswith("rule 0 (include defaults: ")


def test_defaults_action_override_and_exact_rules_around_it() -> None:
    rules = [{"include": "defaults", "action": "deny"}, allow("github.com")]
    assert decide(rules, "github.com").rule == "rule 0 (include defaults: github.com deny)"
    assert not decide(rules, "pypi.org").allowed
    assert decide([{"include": "defaults"}, deny("pypi.org")], "pypi.org").allowed
    assert "example.com" not in DEFAULT_DOMAINS
    assert not decide([{"include": "defaults"}], "example.com").allowed


def test_rules_the_real_sprite_would_skip_are_skipped() -> None:
    skipped = [{"domain": "a.com"}, {"include": "everything"}, {"domain": "", "action": "deny"}]
    assert unrestricted(skipped)
    assert decide([*skipped, deny("b.com")], "a.com").rule.startswith("no matching rule")
