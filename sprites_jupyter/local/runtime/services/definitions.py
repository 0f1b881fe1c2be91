"""Service definitions: validation, the dependency graph, and their files.

Definitions live in the sprite's platform directory, seen inside as
``/.sprite/services/<name>.json`` (read-only to the sprite); checkpoints capture them
and a restore brings them back as they were. A marker
``<name>.stopped`` next to a definition records an explicit stop, which keeps the
service down across crashes, server restarts and restores until it is started again.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import Conflict, Invalid, LocalError
from ...storage.paths import SPRITE_HOME, sprite_path
from ...wire import reject_unknown_fields

log = logging.getLogger("sprites_jupyter.local.services")

SERVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DEFINITIONS_DIR = "services"
LOGS_DIR = "logs/services"
_FIELDS = {"name", "cmd", "args", "needs", "http_port", "env", "dir"}


@dataclass(frozen=True)
class ServiceDef:
    """One service as defined by PUT: the executable, its arguments and its needs."""

    name: str
    cmd: str
    args: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)
    http_port: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    dir: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "cmd": self.cmd, "args": self.args,
                                "needs": self.needs, "http_port": self.http_port,
                                "env": self.env}
        if self.dir is not None:
            body["dir"] = self.dir
        return body


def check_name(name: str) -> str:
    """The service name, or Invalid when it cannot be one."""
    if not SERVICE_NAME.fullmatch(name):
        raise Invalid(f"invalid service name {name[:80]!r}: use letters, digits, '_', "
                      "'.' and '-', starting with a letter or digit (at most 63)")
    return name


def _string_list(body: Mapping[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise Invalid(f"{key} must be a list of strings")
    return value


def _http_port(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise Invalid(f"http_port must be an integer from 1 to 65535 or null, not {value!r}")
    return value


def _env(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise Invalid('env must be an object of strings, like {"PORT": "8080"}')
    for key in value:
        if not key or "=" in key or "\x00" in key:
            raise Invalid(f"invalid env variable name {key!r}")
    return dict(value)


def parse_definition(name: str, body: Mapping[str, Any]) -> ServiceDef:
    """Validate a PUT body (field types only; see :func:`check_graph` for ``needs``)."""
    reject_unknown_fields(body, _FIELDS, what="service definition")
    if body.get("name", name) != name:
        raise Invalid(f"name in the body ({body['name']!r}) differs from the URL ({name!r})")
    cmd = body.get("cmd")
    if not isinstance(cmd, str) or not cmd.strip():
        raise Invalid("missing cmd: give the executable to run, e.g. "
                      '{"cmd": "python3", "args": ["-m", "http.server"]}')
    needs = _string_list(body, "needs")
    for need in needs:
        if not SERVICE_NAME.fullmatch(need):
            raise Invalid(f"dependency not found: {need}")
    directory = body.get("dir")
    if directory is not None:
        if not isinstance(directory, str) or not directory:
            raise Invalid("dir must be a non-empty path string")
        try:
            directory = sprite_path(directory, SPRITE_HOME)
        except LocalError as exc:
            raise Invalid(f"invalid dir: {exc.message}") from None
    return ServiceDef(name=name, cmd=cmd, args=_string_list(body, "args"),
                      needs=list(dict.fromkeys(needs)), http_port=_http_port(body.get("http_port")),
                      env=_env(body.get("env")), dir=directory)


def check_graph(new: ServiceDef, existing: Mapping[str, ServiceDef]) -> None:
    """Refuse unknown or circular ``needs`` (Invalid) and a second HTTP port (Conflict)."""
    for need in new.needs:
        if need == new.name:
            raise Invalid(f"service {new.name} cannot depend on itself")
        if need not in existing:
            raise Invalid(f"dependency not found: {need}")
    graph = {**existing, new.name: new}
    seen: set[str] = set()
    stack = list(new.needs)
    while stack:
        current = stack.pop()
        if current == new.name:
            raise Invalid("circular dependency detected")
        if current in seen or current not in graph:
            continue
        seen.add(current)
        stack.extend(graph[current].needs)
    if new.http_port is not None:
        for other in existing.values():
            if other.name != new.name and other.http_port is not None:
                raise Conflict("another service already has an HTTP port configured "
                               f"({other.name} on {other.http_port})")


def start_order(definitions: Mapping[str, ServiceDef]) -> list[str]:
    """All names, each after the services it needs (names sorted among equals)."""
    order: list[str] = []
    placed: set[str] = set()

    def visit(name: str, path: set[str]) -> None:
        if name in placed or name in path or name not in definitions:
            return
        for need in definitions[name].needs:
            visit(need, path | {name})
        placed.add(name)
        order.append(name)

    for name in sorted(definitions):
        visit(name, set())
    return order


class DefinitionStore:
    """Reads and writes one sprite's definitions and stop markers in its platform directory
    (server-owned: no sprite process can write there or swap a part for a symlink)."""

    def __init__(self, platform: Path) -> None:
        self.platform = platform

    @property
    def directory(self) -> Path:
        return self.platform / DEFINITIONS_DIR

    def log_file(self, name: str) -> Path:
        return self.platform / LOGS_DIR / f"{name}.log"

    def load(self) -> dict[str, ServiceDef]:
        """Every readable definition; a damaged file is logged and skipped."""
        found: dict[str, ServiceDef] = {}
        if not self.directory.is_dir():
            return found
        for path in sorted(self.directory.glob("*.json")):
            name = path.name.removesuffix(".json")
            try:
                found[name] = parse_definition(name, json.loads(path.read_text()))
            except (OSError, ValueError, LocalError) as exc:
                log.warning("skipping service definition %s: %s", path, exc)
        return found

    def save(self, definition: ServiceDef) -> None:
        """Write atomically, so a crash never leaves half a definition."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.directory / f"{definition.name}.json"
        temp = self.directory / f".{definition.name}.json.tmp"
        temp.write_text(json.dumps(definition.to_json(), indent=2) + "\n")
        os.replace(temp, target)

    def delete(self, name: str) -> None:
        (self.directory / f"{name}.json").unlink(missing_ok=True)
        self.set_stopped(name, False)

    def is_stopped(self, name: str) -> bool:
        return (self.directory / f"{name}.stopped").exists()

    def set_stopped(self, name: str, stopped: bool) -> None:
        marker = self.directory / f"{name}.stopped"
        if stopped:
            self.directory.mkdir(parents=True, exist_ok=True)
            marker.touch()
        else:
            marker.unlink(missing_ok=True)
