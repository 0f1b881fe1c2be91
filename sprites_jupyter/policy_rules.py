"""How a network policy decides whether a sprite may reach a domain (reference section 9.4).

Pure functions shared by the local server's egress proxy and the ``%sprite policy check``
magic, so both give the same answer. The matching follows the real sprite's policy
code: rules are expanded in order (``include: defaults`` becomes the bundle's domains,
with its action or the rule's override); the first exact rule for the name wins, else
the first ``*.domain`` rule that covers it (``*.example.com`` also covers
``example.com``), else the first ``*`` rule; when rules exist and none matches, the
name is denied. ``rules: []`` means unrestricted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_DOMAINS", "Verdict", "decide", "domain_problem", "normalise_domain",
           "unrestricted"]

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")

DEFAULT_DOMAINS: tuple[str, ...] = (
    # AI services
    "api.anthropic.com", "statsig.anthropic.com", "claude.ai",
    "api.openai.com", "platform.openai.com", "chat.openai.com", "openai.com",
    "copilot-proxy.githubusercontent.com", "api.githubcopilot.com", "copilot.github.com",
    "gemini.google.com", "generativelanguage.googleapis.com", "ai.google.dev",
    # version control
    "github.com", "www.github.com", "api.github.com",
    "raw.githubusercontent.com", "objects.githubusercontent.com", "codeload.github.com",
    "avatars.githubusercontent.com", "camo.githubusercontent.com", "gist.github.com",
    "gitlab.com", "www.gitlab.com", "registry.gitlab.com",
    "bitbucket.org", "www.bitbucket.org", "api.bitbucket.org",
    # container registries
    "registry-1.docker.io", "auth.docker.io", "index.docker.io",
    "hub.docker.com", "www.docker.com", "production.cloudflare.docker.com",
    "download.docker.com", "*.gcr.io", "ghcr.io", "mcr.microsoft.com",
    "*.data.mcr.microsoft.com",
    # cloud platforms
    "cloud.google.com", "accounts.google.com", "gcloud.google.com", "*.googleapis.com",
    "storage.googleapis.com", "compute.googleapis.com", "container.googleapis.com",
    "azure.com", "portal.azure.com", "microsoft.com", "www.microsoft.com",
    "*.microsoftonline.com", "packages.microsoft.com", "dotnet.microsoft.com", "dot.net",
    "visualstudio.com", "dev.azure.com", "oracle.com", "www.oracle.com", "java.com",
    "www.java.com", "java.net", "www.java.net", "download.oracle.com", "yum.oracle.com",
    # JavaScript
    "registry.npmjs.org", "www.npmjs.com", "www.npmjs.org", "npmjs.com", "npmjs.org",
    "yarnpkg.com", "registry.yarnpkg.com",
    # Python
    "pypi.org", "www.pypi.org", "files.pythonhosted.org", "pythonhosted.org",
    "test.pypi.org", "pypi.python.org", "pypa.io", "www.pypa.io",
    # Rust
    "crates.io", "www.crates.io", "static.crates.io", "rustup.rs", "static.rust-lang.org",
    "www.rust-lang.org",
    # Go
    "proxy.golang.org", "sum.golang.org", "index.golang.org", "golang.org",
    "www.golang.org", "goproxy.io", "pkg.go.dev",
    # JVM
    "maven.org", "repo.maven.org", "central.maven.org", "repo1.maven.org",
    "jcenter.bintray.com", "gradle.org", "www.gradle.org", "services.gradle.org",
    "spring.io", "repo.spring.io",
    # Linux distributions
    "archive.ubuntu.com", "security.ubuntu.com", "ubuntu.com", "www.ubuntu.com",
    "*.ubuntu.com", "ppa.launchpad.net", "launchpad.net", "www.launchpad.net",
    # developer tools
    "dl.k8s.io", "pkgs.k8s.io", "k8s.io", "www.k8s.io",
    "releases.hashicorp.com", "apt.releases.hashicorp.com", "rpm.releases.hashicorp.com",
    "archive.releases.hashicorp.com", "hashicorp.com", "www.hashicorp.com",
    "nodejs.org", "www.nodejs.org",
    # monitoring, mirrors, schemas
    "statsig.com", "www.statsig.com", "api.statsig.com", "*.sentry.io",
    "*.sourceforge.net", "packagecloud.io", "*.packagecloud.io",
    "json-schema.org", "www.json-schema.org", "json.schemastore.org", "www.schemastore.org",
    # Sprites and Fly
    "api.fly.io", "api.machines.dev", "api.sprites.dev", "sprites.dev", "fly.io",
)
"""The ``include: defaults`` bundle, as the real sprite's policy code lists it."""

_ACTIONS = ("allow", "deny")


@dataclass(frozen=True)
class Verdict:
    """Whether a domain may be reached, and the rule that decided it (for messages)."""

    domain: str
    allowed: bool
    rule: str
    """E.g. ``rule 2 (*.example.com deny)``, ``rule 0 (include defaults: github.com
    allow)``, ``no matching rule (rules are set, so the rest is denied)``,
    ``no rules (unrestricted)``."""

    @property
    def action(self) -> str:
        return "allow" if self.allowed else "deny"


@dataclass(frozen=True)
class _Expanded:
    pattern: str
    action: str
    origin: str


def normalise_domain(domain: str) -> str:
    """Lower-cased, trimmed, without a trailing dot: how names are compared."""
    return domain.strip().lower().rstrip(".")


def domain_problem(domain: str) -> str | None:
    """Why ``domain`` cannot be a rule's domain (a name, ``*.name`` or ``*``), or None."""
    name = normalise_domain(domain)
    if name == "*":
        return None
    labels = name.removeprefix("*.").split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        return (f"{domain!r} is not a domain: use a host name (pypi.org), *.name for its "
                "subdomains (*.pythonhosted.org) or * for everything")
    if all(label.isdigit() for label in labels):
        return (f"{domain!r} is an IP address: rules name domains (a connection to an "
                "address passes when an allowed name resolved to it)")
    return None


def _field(rule: Mapping[str, object], key: str) -> str:
    value = rule.get(key)
    return value.strip().lower() if isinstance(value, str) else ""


def _expand(rules: Iterable[Mapping[str, object]]) -> list[_Expanded]:
    """The rules in order with includes replaced by their domains; invalid ones skipped,
    as the real sprite skips them."""
    expanded: list[_Expanded] = []
    for index, rule in enumerate(rules):
        action = _field(rule, "action")
        include = _field(rule, "include")
        if include:
            if include != "defaults" or action not in ("", *_ACTIONS):
                continue
            action = action or "allow"
            expanded.extend(
                _Expanded(domain, action, f"rule {index} (include defaults: {domain} {action})")
                for domain in DEFAULT_DOMAINS)
        elif _field(rule, "domain") and action in _ACTIONS:
            pattern = normalise_domain(_field(rule, "domain"))
            expanded.append(_Expanded(pattern, action, f"rule {index} ({pattern} {action})"))
    return expanded


def _covers(pattern: str, domain: str) -> bool:
    """Whether ``*.suffix`` covers ``domain``: any depth of subdomain, or the suffix itself."""
    suffix = pattern[2:]
    return domain == suffix or domain.endswith("." + suffix)


def unrestricted(rules: Iterable[Mapping[str, object]]) -> bool:
    """Whether ``rules`` enforce nothing (``[]``, or only rules the sprite would skip)."""
    return not _expand(rules)


def decide(rules: Iterable[Mapping[str, object]], domain: str) -> Verdict:
    """The verdict of ``rules`` (a policy document's ``rules`` list) on ``domain``."""
    name = normalise_domain(domain)
    expanded = _expand(rules)
    if not expanded:
        return Verdict(name, True, "no rules (unrestricted)")
    tiers = (
        (rule for rule in expanded if rule.pattern == name),
        (rule for rule in expanded if rule.pattern.startswith("*.") and _covers(rule.pattern,
                                                                                name)),
        (rule for rule in expanded if rule.pattern == "*"),
    )
    for tier in tiers:
        rule = next(tier, None)
        if rule is not None:
            return Verdict(name, rule.action == "allow", rule.origin)
    return Verdict(name, False, "no matching rule (rules are set, so the rest is denied)")
