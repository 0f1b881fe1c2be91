"""What every part of the :class:`~.sprite.Sprite` face shares: its name, paths, streams."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from .control_pool import ControlPool, ControlPools
from .http import HttpSession, Params, segment
from .models import SpriteInfo
from .streams import Event, EventStream

T = TypeVar("T", bound=Event)


class Client(Protocol):
    """What a sprite handle needs of the :class:`~.client.SpritesClient` it came from
    (declared here, so the parts of the face do not import the client that builds them)."""

    _http: HttpSession
    _control: ControlPools

    @property
    def base_url(self) -> str: ...

    @property
    def is_local(self) -> bool: ...

    def get_sprite(self, name: str) -> SpriteInfo: ...

    def local_isolation(self) -> str | None: ...


class SpriteHandle:
    """A named sprite on one client; creating a handle sends no request."""

    def __init__(self, client: Client, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a sprite needs a name, e.g. client.sprite('my-sprite')")
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"<Sprite {self.name!r} on {self.client.base_url}>"

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SpriteHandle) and other.name == self.name
                and other.client is self.client)

    def __hash__(self) -> int:
        return hash((self.name, id(self.client)))

    @property
    def _http(self) -> HttpSession:
        return self.client._http

    @property
    def _control_pool(self) -> ControlPool | None:
        """Where this sprite's execs find a control connection (None: client closed)."""
        return self.client._control.pool(self.name)

    def _path(self, suffix: str = "") -> str:
        return f"/v1/sprites/{segment(self.name)}{suffix}"

    def _stream(self, method: str, suffix: str, parse: Callable[[Any], T], *, what: str,
                params: Params = None, json: Any = None, raise_on_error: bool = True,
                on_json_object: Callable[[Any], T] | None = None) -> EventStream[T]:
        response = self._http.stream(method, self._path(suffix), what=what, params=params,
                                     json=json)
        return EventStream(response, parse, what=what, raise_on_error=raise_on_error,
                           on_json_object=on_json_object)
