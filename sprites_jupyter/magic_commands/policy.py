"""``%sprite policy``: show, allow, deny, set, reset and check the network policy.

``check`` decides by the rules, then, where the sprite has an egress proxy (the local
server's sandboxes), asks that proxy from inside the sprite: it resolves the name and
applies the server's private-address rule, which the rules alone cannot tell.
"""

from __future__ import annotations

import ipaddress
import json
from argparse import Namespace
from collections.abc import Iterable
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from IPython.core.error import UsageError

from ..client import PolicyRule, Sprite, SpritesClient
from ..frames import policy_frame
from ..policy_rules import decide, domain_problem
from .context import CommandContext
from .registry import action, argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["policy"]

EGRESS_CHECK_SOURCE = files("sprites_jupyter.remote").joinpath("egress_check.py").read_text(
    "utf-8")
UNRESTRICTED_NOTE = "No rules: the sprite may reach any public host (unrestricted)."


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


def _host_and_port(target: str) -> tuple[str, int]:
    if "://" not in target:
        return target.strip(), 443
    parts = urlsplit(target)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", port or (80 if parts.scheme == "http" else 443)


def _ask_proxy(handle: Sprite, host: str, port: int) -> dict[str, Any] | None:
    """The sprite's egress proxy's answer to ``CONNECT host:port``; None without a proxy."""
    result = handle.run("python3", "-", host, str(port), stdin=EGRESS_CHECK_SOURCE, timeout=60)
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None
    return answer if isinstance(answer, dict) and answer.get("proxy", True) is not None \
        else None


def check_verdict(handle: Sprite, target: str) -> str:
    """The rules' verdict on ``target``, corrected by what the sprite's proxy answers."""
    line = check_line(handle.get_network_policy().rules, target)
    host, port = _host_and_port(target)
    if " is allowed: " not in line:
        return line
    answer = _ask_proxy(handle, host, port)
    if answer is None or answer.get("status") == 200:
        return line
    detail = str(answer.get("detail") or answer.get("reason") or "no answer")
    if answer.get("status") == 403:
        return f"{host} is blocked: {detail.removeprefix('Blocked: ')}"
    return f"{line}; but the sprite cannot reach it now: {detail}"


def check_line(rules: Iterable[PolicyRule], target: str) -> str:
    """One line: whether the rules let a sprite reach ``target`` (a domain or URL), and
    by which rule, decided as the local egress proxy decides."""
    host = _host_and_port(target)[0]
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
            print(check_verdict(handle, args.domain))
            return None
        if args.action in ("allow", "deny"):
            problem = domain_problem(args.domain)
            if problem:
                raise UsageError(f"%sprite policy {args.action}: {problem}")
            current = handle.get_network_policy().rules
            handle.set_network_policy(_with_rule(current, args.domain, args.action))
        elif args.action == "set":
            handle.set_network_policy(_rules_from(ctx, args.variable))
        elif args.action == "reset":
            handle.set_network_policy([])
        rules = handle.get_network_policy().rules
        if not rules:
            print(UNRESTRICTED_NOTE)
        return policy_frame(rules)
