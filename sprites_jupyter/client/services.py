"""Services of a sprite: define, start, stop, restart, signal, delete, follow logs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ProtocolError
from .handle import SpriteHandle
from .http import go_duration, segment
from .models import Service, ServiceLogEvent
from .streams import EventStream

_FOREVER = "87600h"


def _duration(seconds: float | None) -> dict[str, str]:
    """The ``duration`` parameter, sent only when set (as sprites-go does)."""
    return {} if seconds is None else {"duration": go_duration(seconds)}


def _as_complete(service: Any) -> ServiceLogEvent:
    """Servers that answer a service PUT with the JSON object instead of a stream."""
    return ServiceLogEvent(type="complete", extra={"service": service})


class ServicesMixin(SpriteHandle):
    def list_services(self) -> list[Service]:
        response = self._http.request("GET", self._path("/services"),
                                      what=f"list services of {self.name}")
        body = response.json()
        if isinstance(body, dict) and isinstance(body.get("services"), list):
            body = body["services"]
        if not isinstance(body, list):
            raise ProtocolError(f"list services of {self.name}: expected a JSON array")
        return [Service.from_json(item) for item in body]

    def get_service(self, name: str) -> Service:
        response = self._http.request("GET", self._service(name),
                                      what=f"get service {name} of {self.name}")
        return Service.from_json(response.json())

    def create_service(self, name: str, cmd: str, args: Sequence[str] = (), *,
                       needs: Sequence[str] = (), http_port: int | None = None,
                       env: Mapping[str, str] | None = None, dir: str | None = None,
                       duration: float | None = None,
                       raise_on_error: bool = True) -> EventStream[ServiceLogEvent]:
        """Create or update service ``name`` and start it; stream its first ``duration`` s
        (default: the server's, 5 s on the reference).

        ``cmd`` is the executable alone; its arguments go in ``args``.
        """
        if not isinstance(cmd, str) or not cmd.strip():
            raise ValueError("a service needs cmd, the executable (arguments go in args)")
        if isinstance(args, str) or isinstance(needs, str):
            raise ValueError("args and needs are lists of strings, e.g. args=['-m', 'http.server']")
        body: dict[str, Any] = {"cmd": cmd}
        if args:
            body["args"] = list(args)
        if needs:
            body["needs"] = list(needs)
        if http_port is not None:
            body["http_port"] = http_port
        if env is not None:
            body["env"] = dict(env)
        if dir is not None:
            body["dir"] = dir
        return self._stream("PUT", self._service_suffix(name), ServiceLogEvent.from_json,
                            what=f"create service {name} on {self.name}", json=body,
                            params=_duration(duration),
                            raise_on_error=raise_on_error, on_json_object=_as_complete)

    def start_service(self, name: str, duration: float | None = None, *,
                      raise_on_error: bool = True) -> EventStream[ServiceLogEvent]:
        return self._stream("POST", self._service_suffix(name, "/start"),
                            ServiceLogEvent.from_json, what=f"start service {name} on {self.name}",
                            params=_duration(duration), raise_on_error=raise_on_error)

    def stop_service(self, name: str, timeout: float | None = None, *,
                     raise_on_error: bool = True) -> EventStream[ServiceLogEvent]:
        """SIGTERM the service, SIGKILL after ``timeout`` s (default: the server's, 10 s on
        the reference); it stays stopped."""
        params = {} if timeout is None else {"timeout": go_duration(timeout)}
        return self._stream("POST", self._service_suffix(name, "/stop"),
                            ServiceLogEvent.from_json, what=f"stop service {name} on {self.name}",
                            params=params,
                            raise_on_error=raise_on_error)

    def restart_service(self, name: str, duration: float | None = None, *,
                        raise_on_error: bool = True) -> EventStream[ServiceLogEvent]:
        return self._stream("POST", self._service_suffix(name, "/restart"),
                            ServiceLogEvent.from_json,
                            what=f"restart service {name} on {self.name}",
                            params=_duration(duration), raise_on_error=raise_on_error)

    def delete_service(self, name: str) -> None:
        """Delete the definition (stopping the service first); its log file is kept."""
        self._http.request("DELETE", self._service(name),
                           what=f"delete service {name} of {self.name}")

    def signal_service(self, name: str, signal: str) -> None:
        """Send ``signal`` (``HUP``, ``SIGTERM``…) to the running service."""
        self._http.request("POST", self._path("/services/signal"),
                           json={"name": name, "signal": signal},
                           what=f"signal service {name} of {self.name}")

    def service_logs(self, name: str, *, lines: int | None = None, follow: float = 0,
                     raise_on_error: bool = True) -> EventStream[ServiceLogEvent]:
        """Buffered log lines, then ``follow`` seconds of new output (``inf``: until closed)."""
        params: dict[str, str] = {}
        if lines is not None:
            params["lines"] = str(int(lines))
        if follow:
            params["duration"] = _FOREVER if math.isinf(follow) else go_duration(follow)
        return self._stream("GET", self._service_suffix(name, "/logs"),
                            ServiceLogEvent.from_json, what=f"logs of service {name}",
                            params=params, raise_on_error=raise_on_error)

    def _service_suffix(self, name: str, action: str = "") -> str:
        if not isinstance(name, str) or not name or name == "signal":
            raise ValueError(f"invalid service name {name!r}")
        return f"/services/{segment(name)}{action}"

    def _service(self, name: str) -> str:
        return self._path(self._service_suffix(name))
