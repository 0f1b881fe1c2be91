"""A sandboxed sprite's egress, put together: the proxy with the sprite's stored policy,
the bridge run at each sandbox start, and the proxy variables every process of the
sprite gets."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import bridge
from .addresses import PrivateAllowance
from .bridge_spare import SpareBridges
from .handover import HandoverError, take_over
from .proxy import EgressProxy

if TYPE_CHECKING:
    from ..sandbox.machine import Sandbox

log = logging.getLogger("sprites_jupyter.local.egress")

POLICY_FILE = "policy/network.json"
"""Where a sprite's policy is stored, under its platform directory (``/.sprite``)."""

PROXY_URL = f"http://127.0.0.1:{bridge.PROXY_PORT}"
PROXY_ENV = {name: PROXY_URL for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                          "http_proxy", "https_proxy", "all_proxy")}
PROXY_ENV |= {"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}
"""What every process of a sandboxed sprite finds in its environment."""

BRIDGE_TIMEOUT = 30.0
SPARE_BRIDGES = SpareBridges()
"""This server's bridges, one started ahead of the next sandbox start."""


def read_rules(policy_path: Path) -> list[dict[str, Any]]:
    """The rules stored at ``policy_path`` (none stored, or unreadable: no rules)."""
    try:
        document = json.loads(policy_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    rules = document.get("rules") if isinstance(document, dict) else None
    return [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []


class SpriteEgress:
    """The egress of the sprite ``name``, whose policy is stored at ``policy_path``."""

    def __init__(self, name: str, policy_path: Path,
                 test_hosts: Mapping[str, str] | None = None,
                 private_allowed: PrivateAllowance | None = None) -> None:
        self.policy_path = policy_path
        self.proxy = EgressProxy(name, test_hosts=test_hosts,
                                 private_allowed=private_allowed or PrivateAllowance())

    async def start(self, netns: str) -> None:
        """Load the stored policy and serve the sockets the bridge makes in the network
        namespace ``netns`` (``/proc/PID/ns/net`` of the just started sandbox), replacing
        an earlier sandbox's. HandoverError says why not, in the bridge's words."""
        self.proxy.set_rules(await asyncio.to_thread(read_rules, self.policy_path))
        started = await asyncio.to_thread(SPARE_BRIDGES.take)
        process = started.process
        with started.server_end as server_end:
            try:
                server_end.sendall(netns.encode())
                await take_over(self.proxy, server_end)
            except HandoverError as error:
                server_end.close()
                said = await _said(process)
                raise HandoverError(f"{error}: {said}" if said else str(error)) from None
            except BaseException:
                process.kill()
                await asyncio.to_thread(process.wait)
                raise
            said = await _said(process)
            if said:
                log.warning("sprite %s: %s", self.proxy.sprite, said)

    async def attach(self, netns: str) -> None:
        """:meth:`start`, as a sandbox start hook: a failure is logged, and the sprite
        runs without network rather than not at all."""
        try:
            await self.start(netns)
        except (HandoverError, OSError, TimeoutError) as error:
            log.warning("sprite %s has no network: its egress proxy did not attach: %s",
                        self.proxy.sprite, error)

    def set_rules(self, rules: Sequence[Mapping[str, Any]]) -> int:
        """Apply a new policy now; returns how many open connections it cut."""
        return self.proxy.set_rules(rules)

    async def close(self) -> None:
        """Stop serving and cut every connection (the sandbox stops)."""
        await self.proxy.close()


async def _said(process: subprocess.Popen[bytes]) -> str:
    """What the bridge wrote to stderr, once it exited."""
    try:
        _, said = await asyncio.to_thread(process.communicate, None, BRIDGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        _, said = await asyncio.to_thread(process.communicate)
    return said.decode(errors="replace").strip()


def egress_for(sandbox: Sandbox, test_hosts: Mapping[str, str] | None = None,
               private_allowed: PrivateAllowance | None = None) -> SpriteEgress:
    """The egress of a sandboxed sprite, hooked to its sandbox: attached at each start,
    and the proxy variables in every process's environment."""
    egress = SpriteEgress(sandbox.name, sandbox.files.platform / POLICY_FILE, test_hosts,
                          private_allowed)
    sandbox.network_hooks.append(egress.attach)
    sandbox.started_hooks.append(SPARE_BRIDGES.make_ahead)
    sandbox.platform_env.update(PROXY_ENV)
    return egress
