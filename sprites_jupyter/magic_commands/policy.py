"""``%sprite policy``: show, allow, deny, set, reset and check the network policy."""

from __future__ import annotations

import ipaddress
from argparse import Namespace
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from IPython.core.error import UsageError

from ..client import PolicyRule, SpritesClient
from ..frames import policy_frame
from ..policy_rules import decide
from .context import CommandContext
from .registry import action, argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["policy"]


def _with_rule(rules: Iterable[PolicyRule], domain: str, action: str) -> list[PolicyRule]:
    """The rules with ``domain``'s rule replaced by (or extended with) ``action``."""
    kept = [rule for rule in rules if rule.domain != domain]
    return [*kept, PolicyRule(domain=domain, action=action)]


def _rules_from(ctx: CommandContext, variable: str) -> list[Any]:
    if variable not in ctx.shell.user_ns:
        raise UsageError(f"No variable named {variable}: set it to a list of rule dicts, "
                         'e.g. [{"domain": "pypi.org", "action": "allow"}]')
    rules = ctx.shell.user_ns[variable]
    if not isinstance(rules, list | tuple) or not all(
            isinstance(r, dict | PolicyRule) for r in rules):
        raise UsageError(f"{variable} must be a list of rule dicts, "
                         'e.g. [{"domain": "pypi.org", "action": "allow"}]')
    return list(rules)


def check_line(rules: Iterable[PolicyRule], target: str) -> str:
    """One line: whether the rules let a sprite reach ``target`` (a domain or URL), and
    by which rule, decided as the local egress proxy decides."""
    host = (urlsplit(target).hostname if "://" in target else target.strip()) or ""
    if not host:
        raise UsageError(f"{target!r} names no host: give a domain or URL, "
                         "e.g. %sprite policy check pypi.org")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return (f"{host} is a raw IP address: reachable only when an allowed name resolved "
                "to it, never in private or loopback ranges")
    verdict = decide([rule.to_json() for rule in rules], host)
    if verdict.allowed:
        return f"{verdict.domain} is allowed: {verdict.rule}"
    return (f"{verdict.domain} is denied: {verdict.rule} "
            f"(to allow it: %sprite policy allow {verdict.domain})")


def enforcement_note(client: SpritesClient) -> str | None:
    """A line for a backend that stores rules without enforcing them (an unsandboxed
    local server), else None."""
    if not client.is_local:
        return None
    isolation = client.local_isolation()
    if isolation is None or isolation == "sandbox":
        return None
    return (f"Note: this local server runs sprites {isolation}, so these rules are stored "
            "but not enforced.")


@subcommand(
    "policy", "network policy (DataFrame) | allow D | deny D | set VAR | reset | check D",
    actions=(
        action("allow", "allow DOMAIN", argument("domain")),
        action("deny", "deny DOMAIN", argument("domain")),
        action("set", "set VAR (a list of rule dicts)", argument("variable")),
        action("reset", "remove every rule"),
        action("check", "check DOMAIN or URL: allowed or not, and by which rule",
               argument("domain", metavar="DOMAIN_OR_URL")),
    ))
def policy(ctx: CommandContext, args: Namespace) -> pd.DataFrame | None:
    """Change the policy as asked, then return its rules as a DataFrame (``check``
    prints its verdict instead)."""
    handle = ctx.sprite(args.sprite)
    target = getattr(args, "domain", None) or getattr(args, "variable", None) or ""
    with ctx.operation(handle.name, f"policy {args.action or 'show'}", target):
        note = enforcement_note(ctx.client)
        if note:
            print(note)
        if args.action == "check":
            print(check_line(handle.get_network_policy().rules, args.domain))
            return None
        if args.action in ("allow", "deny"):
            current = handle.get_network_policy().rules
            handle.set_network_policy(_with_rule(current, args.domain, args.action))
        elif args.action == "set":
            handle.set_network_policy(_rules_from(ctx, args.variable))
        elif args.action == "reset":
            handle.set_network_policy([])
        return policy_frame(handle.get_network_policy().rules)
