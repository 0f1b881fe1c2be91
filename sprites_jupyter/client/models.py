"""Typed, frozen views of every object and event in the Sprites protocol.

Each model keeps every field: the known ones as attributes (datetimes parsed to aware
``datetime``), anything else in ``extra``, so nothing the server sends is lost.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Self

from .display import html_table as _html_table
from .display import short as _short
from .display import when as _when
from .errors import ProtocolError
from .json_fields import (
    absent,
    build,
    byte_count,
    json_object,
    parse_millis,
    parse_time,
    strings,
)

_SPRITE_TIMES = ("created_at", "updated_at", "last_started_at", "last_active_at",
                 "last_running_at", "last_warming_at")


@dataclass(frozen=True)
class SpriteInfo:
    """A sprite as the management API describes it."""

    name: str
    id: str = ""
    organization: str = ""
    url: str = ""
    url_settings: Mapping[str, Any] = field(default_factory=dict)
    status: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    labels: tuple[str, ...] = ()
    last_started_at: datetime | None = None
    last_active_at: datetime | None = None
    last_running_at: datetime | None = None
    last_warming_at: datetime | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def auth(self) -> str | None:
        """``"sprite"`` or ``"public"``: who may reach the sprite's URL."""
        return self.url_settings.get("auth")

    @property
    def private_access(self) -> str | None:
        """Who else in the organisation may reach a ``sprite``-auth URL (e.g. ``"admins"``),
        when the service says."""
        return self.url_settings.get("private_access")

    def __repr__(self) -> str:
        return f"SpriteInfo({self.name!r}, {self.status or 'unknown'}, {self.url or 'no url'})"

    def _repr_html_(self) -> str:
        return _html_table(f"Sprite {self.name}", [
            ("status", self.status), ("url", self.url), ("id", self.id),
            ("created", _when(self.created_at) if self.created_at else ""),
            ("labels", ", ".join(self.labels))])

    @classmethod
    def from_json(cls, data: object) -> Self:
        get = data.get if isinstance(data, dict) else absent
        times: dict[str, Any] = {key: parse_time(get(key)) for key in _SPRITE_TIMES}
        return build(cls, data, organization=get("organization") or get("org_slug") or "",
                     labels=strings(get("labels")),
                     url_settings=json_object(get("url_settings")),
                     config=json_object(get("config")),
                     environment={str(k): str(v) for k, v in
                                  json_object(get("environment")).items()}, **times)


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint: ``v<N>`` (user), ``auto-<ms>`` (automatic) or the ``Current`` entry.

    ``changed_bytes`` is what it stored that its parent did not have (the files new or
    changed since), where the server says: the local one does, the Sprites service not.
    """

    id: str
    create_time: datetime | None = None
    comment: str = ""
    source_id: str | None = None
    history: tuple[str, ...] = ()
    is_auto: bool = False
    health: str = ""
    changed_bytes: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        comment = f", {_short(self.comment, 40)}" if self.comment else ""
        return f"Checkpoint({self.id}, {_when(self.create_time)}{comment})"

    def _repr_html_(self) -> str:
        lineage = " → ".join((*self.history, self.id)) if self.history else ""
        return _html_table(f"Checkpoint {self.id}", [
            ("created", _when(self.create_time)), ("comment", self.comment),
            ("source", self.source_id or ""), ("lineage", lineage),
            ("automatic", "yes" if self.is_auto else ""),
            ("changed", "" if self.changed_bytes is None else f"{self.changed_bytes:,} bytes")])

    @classmethod
    def from_json(cls, data: object) -> Self:
        if not isinstance(data, dict) or "id" not in data:
            return build(cls, data)
        get = data.get
        history = get("history")
        # Lists of a thousand checkpoints are common: fill the frozen instance directly.
        checkpoint = object.__new__(cls)
        checkpoint.__dict__.update(
            id=str(data["id"]), create_time=parse_time(get("create_time")),
            comment=get("comment") or "", source_id=get("source_id"),
            history=strings(history) if history else (), is_auto=bool(get("is_auto")),
            health=get("health") or "", changed_bytes=byte_count(get("changed_bytes")),
            extra={} if data.keys() <= _CHECKPOINT_KEYS
            else {k: v for k, v in data.items() if k not in _CHECKPOINT_KEYS})
        return checkpoint


_CHECKPOINT_KEYS = frozenset(("id", "create_time", "comment", "source_id", "history",
                              "is_auto", "health", "changed_bytes"))


@dataclass(frozen=True)
class StreamMessage:
    """One event of a checkpoint create/restore stream (``info``, ``complete``, ``error``…)."""

    type: str
    data: Any = None
    error: str | None = None
    time: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: object) -> Self:
        time = parse_time(data.get("time")) if isinstance(data, dict) else None
        return build(cls, data, time=time)

    @property
    def text(self) -> str:
        """What to show a person: the error text for errors, else the data."""
        return str(self.error if self.error is not None else (self.data or ""))


@dataclass(frozen=True)
class ServiceState:
    """What the runtime knows about a service's process."""

    name: str = ""
    status: str = ""
    pid: int | None = None
    started_at: datetime | None = None
    error: str | None = None
    restart_count: int = 0
    next_restart_at: datetime | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: object) -> Self:
        get = data.get if isinstance(data, dict) else absent
        return build(cls, data, started_at=parse_time(get("started_at")),
                     next_restart_at=parse_time(get("next_restart_at")),
                     restart_count=get("restart_count") or 0)


@dataclass(frozen=True)
class Service:
    """A service definition with its state (the reference's ServiceWithState)."""

    name: str
    cmd: str = ""
    args: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    http_port: int | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    dir: str | None = None
    state: ServiceState | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def command(self) -> str:
        """The command line, shell-quoted as one would type it."""
        return shlex.join((self.cmd, *self.args))

    def __repr__(self) -> str:
        status = self.state.status if self.state is not None else "no state"
        return f"Service({self.name!r}, {_short(self.command)}, {status})"

    def _repr_html_(self) -> str:
        state = self.state
        return _html_table(f"Service {self.name}", [
            ("command", self.command), ("status", state.status if state else ""),
            ("pid", state.pid if state else None), ("needs", ", ".join(self.needs)),
            ("http_port", self.http_port), ("error", state.error if state else None)])

    @classmethod
    def from_json(cls, data: object) -> Self:
        get = data.get if isinstance(data, dict) else absent
        state = get("state")
        return build(cls, data, args=strings(get("args")), needs=strings(get("needs")),
                     env=dict(get("env") or {}),
                     state=ServiceState.from_json(state) if isinstance(state, dict) else None)


@dataclass(frozen=True)
class ServiceLogEvent:
    """One event of a service stream: ``started``, ``stdout``, ``exit``, ``complete``…"""

    type: str
    timestamp: datetime | None = None
    data: str | None = None
    exit_code: int | None = None
    log_files: Mapping[str, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: object) -> Self:
        stamp = parse_millis(data.get("timestamp")) if isinstance(data, dict) else None
        return build(cls, data, timestamp=stamp)


@dataclass(frozen=True)
class KillEvent:
    """One event of an exec-session kill stream: ``signal``, ``exited``, ``complete``…"""

    type: str
    message: str | None = None
    signal: str | None = None
    pid: int | None = None
    exit_code: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: object) -> Self:
        return build(cls, data)


@dataclass(frozen=True)
class ExecSession:
    """A running exec session as ``GET /exec`` lists it."""

    id: str
    command: str = ""
    workdir: str = ""
    created: datetime | None = None
    bytes_per_second: float = 0.0
    is_active: bool = False
    last_activity: datetime | None = None
    tty: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: object) -> Self:
        get = data.get if isinstance(data, dict) else absent
        return build(cls, data, id=str(get("id") if get("id") is not None else ""),
                     created=parse_time(get("created")),
                     last_activity=parse_time(get("last_activity")))


@dataclass(frozen=True)
class FileEntry:
    """A file or directory in a sprite's filesystem."""

    name: str = ""
    path: str = ""
    type: str = "file"
    size: int = 0
    mode: str = "0644"
    mod_time: datetime | None = None
    is_dir: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def mode_bits(self) -> int:
        """The permission bits as an integer (``0o644``)."""
        try:
            return int(str(self.mode), 8)
        except ValueError:
            return 0o755 if self.is_dir else 0o644

    @classmethod
    def from_json(cls, data: object) -> Self:
        get = data.get if isinstance(data, dict) else absent
        path = str(get("path") or "")
        is_dir = bool(get("isDir")) or get("type") == "directory"
        return build(cls, data, {"modTime": "mod_time", "isDir": "is_dir"},
                     name=get("name") or path.rstrip("/").rsplit("/", 1)[-1],
                     mod_time=parse_time(get("modTime")), is_dir=is_dir,
                     type=get("type") or ("directory" if is_dir else "file"),
                     mode=str(get("mode") or ("0755" if is_dir else "0644")))


@dataclass(frozen=True)
class OutputChunk:
    """Bytes a running command wrote, as they arrived."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class ExecResult:
    """The outcome of :meth:`Sprite.run`."""

    stdout: str
    stderr: str
    exit_code: int
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def __repr__(self) -> str:
        lines = len(self.stdout.splitlines())
        return (f"ExecResult(exit_code={self.exit_code}, duration={self.duration:.2f} s, "
                f"stdout={_short(self.stdout, 40)} ({lines} lines), "
                f"stderr={_short(self.stderr, 40)})")


@dataclass(frozen=True)
class PolicyRule:
    """One network-policy rule: a ``domain`` with an ``action``, or ``include="defaults"``."""

    domain: str | None = None
    action: str | None = None
    include: str | None = None

    def to_json(self) -> dict[str, str]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class NetworkPolicy:
    """A sprite's egress policy; no rules means unrestricted."""

    rules: tuple[PolicyRule, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: object) -> Self:
        if not isinstance(data, dict):
            raise ProtocolError(f"expected a policy object, got {data!r:.80}")
        rules = tuple(
            PolicyRule(**{k: rule.get(k) for k in ("domain", "action", "include")})
            for rule in data.get("rules") or () if isinstance(rule, dict))
        return build(cls, data, rules=rules)
