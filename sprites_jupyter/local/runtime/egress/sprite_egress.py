"""A sandboxed sprite's egress, put together: the proxy with the sprite's stored policy,
the bridge started inside the sprite at each sandbox start, and the proxy variables
every process of the sprite gets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import bridge
from .handover import HandoverError, take_over
from .proxy import EgressProxy

log = logging.getLogger("sprites_jupyter.local.egress")

PROXY_URL = f"http://127.0.0.1:{bridge.PROXY_PORT}"
PROXY_ENV = {name: PROXY_URL for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
                                          "http_proxy", "https_proxy", "all_proxy")}
PROXY_ENV |= {"NO_PROXY": "localhost,127.0.0.1", "no_proxy": "localhost,127.0.0.1"}
"""What every process of a sandboxed sprite finds in its environment."""

_BRIDGE_SOURCE = Path(bridge.__file__).read_text()

StartProcess = Callable[..., Awaitable[Any]]
"""``runtime.run_platform_process(argv, stdio=(in, out, err))``."""


def read_rules(policy_path: Path) -> list[dict[str, Any]]:
    """The rules stored at ``policy_path`` (none stored, or unreadable: no rules)."""
    try:
        document = json.loads(policy_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    rules = document.get("rules") if isinstance(document, dict) else None
    return [rule for rule in rules if isinstance(rule, dict)] if isinstance(rules, list) else []


def _read_some(fd: int) -> str:
    """What the bridge wrote to stderr before it exited (it has: its end is closed)."""
    return os.read(fd, 4096).decode(errors="replace").strip()


class SpriteEgress:
    """The egress of the sprite ``name``, whose policy is stored at ``policy_path``."""

    def __init__(self, name: str, policy_path: Path,
                 test_hosts: Mapping[str, str] | None = None) -> None:
        self.policy_path = policy_path
        self.proxy = EgressProxy(name, test_hosts=test_hosts)
        self._bridge_link: socket.socket | None = None

    async def start(self, start_process: StartProcess, python: str = "python3") -> None:
        """Load the stored policy, start the bridge (with the sandbox's ``python``) in the
        just started sandbox and serve the sockets it hands over, replacing what an
        earlier sandbox handed over. HandoverError says why it failed, bridge's words."""
        self.proxy.set_rules(await asyncio.to_thread(read_rules, self.policy_path))
        server_end, bridge_end = socket.socketpair()
        complaints, complaints_w = os.pipe()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            await start_process([python, "-I", "-S", "-c", _BRIDGE_SOURCE, "0"],
                                stdio=(bridge_end.fileno(), null, complaints_w))
        except BaseException:
            server_end.close()
            os.close(complaints)
            raise
        finally:
            bridge_end.close()
            os.close(complaints_w)
            os.close(null)
        try:
            await take_over(self.proxy, server_end)
        except HandoverError as error:
            server_end.close()
            said = await asyncio.to_thread(_read_some, complaints)
            raise HandoverError(f"{error}: {said}" if said else str(error)) from None
        except BaseException:
            server_end.close()
            raise
        finally:
            os.close(complaints)
        self._drop_bridge()
        self._bridge_link = server_end

    def set_rules(self, rules: Sequence[Mapping[str, Any]]) -> int:
        """Apply a new policy now; returns how many open connections it cut."""
        return self.proxy.set_rules(rules)

    async def close(self) -> None:
        """Stop serving and cut every connection (the sandbox stops)."""
        await self.proxy.close()
        self._drop_bridge()

    def _drop_bridge(self) -> None:
        if self._bridge_link is not None:
            with contextlib.suppress(OSError):
                self._bridge_link.close()
            self._bridge_link = None
