"""The :class:`Sprite` handle: one sprite's exec, sessions, policy, files, services, checkpoints."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from .checkpoints import CheckpointsMixin
from .exec import Command, attach_command, run_command, start_command
from .exec_http import HttpExecResult, run_over_http
from .exec_protocol import signal_name
from .filesystem import FilesystemMixin
from .http import go_duration, segment
from .models import ExecResult, ExecSession, KillEvent, NetworkPolicy, PolicyRule, SpriteInfo
from .proxy import PortConnection
from .services import ServicesMixin
from .streams import EventStream


class Sprite(FilesystemMixin, ServicesMixin, CheckpointsMixin):
    """A handle on the sprite ``name``; every method is one call to the API."""

    def info(self) -> SpriteInfo:
        return self.client.get_sprite(self.name)

    # -- exec ------------------------------------------------------------------

    def run(self, *cmd: str, env: dict[str, str] | None = None, dir: str | None = None,
            stdin: bytes | str | None = None, timeout: float | None = None,
            check: bool = False) -> ExecResult:
        """Run ``cmd`` (an argv: ``run("ls", "-l")``) to completion and collect its output.

        ``env`` replaces the environment; ``timeout`` kills the command and raises
        :class:`ExecTimeout`; ``check=True`` raises :class:`ExecError` on a non-zero exit.
        """
        started = time.monotonic()
        data = stdin.encode() if isinstance(stdin, str) else stdin
        # control's raw stdin cannot carry an input of the one byte 0x04 (its end mark)
        pool = self._control_pool if data != b"\x04" else None
        handle = start_command(self._http, self.name, cmd, env=env, dir=dir,
                               stdin=data is not None, pool=pool)
        return run_command(handle, data, timeout, check, started)

    def run_http(self, *cmd: str, env: dict[str, str] | None = None, dir: str | None = None,
                 stdin: bytes | str | None = None, timeout: float | None = None
                 ) -> HttpExecResult:
        """Run ``cmd`` with one HTTP request (no WebSocket), for networks that block
        WebSockets. ``timeout`` bounds each wait for the response (default: the
        client's); stdout and stderr are exact for text output (see
        :class:`HttpExecResult`)."""
        data = stdin.encode() if isinstance(stdin, str) else stdin
        return run_over_http(self._http, self.name, cmd, env=env, dir=dir, stdin=data,
                             timeout=timeout)

    def command(self, *cmd: str, env: dict[str, str] | None = None, dir: str | None = None,
                tty: bool = False, stdin: bool = True,
                max_run_after_disconnect: float | None = None,
                size: tuple[int, int] | None = None) -> Command:
        """Start ``cmd`` and return the running-process handle (iterate it for output).

        ``max_run_after_disconnect`` (seconds, 0 = forever) lets it outlive the connection;
        ``size=(cols, rows)`` is a TTY's size from its first byte (else 80x24, until
        :meth:`Command.resize`).
        """
        if size is not None and not tty:
            raise ValueError("size is a terminal's size: pass tty=True with it")
        return start_command(self._http, self.name, cmd, env=env, dir=dir, tty=tty,
                             stdin=stdin, max_run_after_disconnect=max_run_after_disconnect,
                             size=size, pool=self._control_pool)

    def list_sessions(self) -> list[ExecSession]:
        response = self._http.request("GET", self._path("/exec"),
                                      what=f"list exec sessions of {self.name}")
        body = response.json()
        sessions = body.get("sessions") if isinstance(body, Mapping) else None
        return [ExecSession.from_json(item) for item in sessions or ()]

    def attach(self, session_id: str | int, *, stdin: bool = False) -> Command:
        """Attach to a running session: its recent output is replayed, then live output.

        Pass ``stdin=True`` to write to the session's input.
        """
        return attach_command(self._http, self.name, str(session_id), stdin=stdin)

    def kill_session(self, session_id: str | int, signal: str = "SIGTERM",
                     timeout: float = 10.0, *,
                     raise_on_error: bool = True) -> EventStream[KillEvent]:
        """Signal a session's process group; SIGKILL it if still alive after ``timeout`` s."""
        return self._stream(
            "POST", f"/exec/{segment(str(session_id))}/kill", KillEvent.from_json,
            what=f"kill session {session_id} on {self.name}",
            params={"signal": "SIG" + signal_name(signal), "timeout": go_duration(timeout)},
            raise_on_error=raise_on_error)

    def server_version(self) -> str | None:
        """The sprite environment's version (``Sprite-Version``), e.g. ``v0.0.1-rc46``."""
        response = self._http.request("HEAD", self._path("/exec"),
                                      what=f"probe the version of {self.name}")
        return response.headers.get("Sprite-Version")

    def open_port(self, port: int, host: str = "localhost") -> PortConnection:
        """A TCP connection to ``host:port`` inside the sprite (over the proxy socket)."""
        return PortConnection(self._http, self.name, port, host)

    # -- network policy --------------------------------------------------------

    def get_network_policy(self) -> NetworkPolicy:
        response = self._http.request("GET", self._path("/policy/network"),
                                      what=f"get network policy of {self.name}")
        return NetworkPolicy.from_json(response.json())

    def set_network_policy(self, rules: Iterable[PolicyRule | Mapping[str, Any]]) -> None:
        """Replace the egress policy with ``rules``, sent as given: the service validates
        them (its 400 is raised as :class:`InvalidRequest` with its message)."""
        if isinstance(rules, Mapping | str):
            raise ValueError("give a list of rules, e.g. [{'domain': 'pypi.org', "
                             "'action': 'allow'}]")
        body = [rule.to_json() if isinstance(rule, PolicyRule) else rule for rule in rules]
        self._http.request("POST", self._path("/policy/network"), json={"rules": body},
                           what=f"set network policy of {self.name}")
