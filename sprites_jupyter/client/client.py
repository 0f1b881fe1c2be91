"""``SpritesClient``: configuration, sprite management, and :class:`Sprite` handles."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import httpx

from .control_pool import ControlPools
from .counters import SpriteCounts
from .errors import ProtocolError
from .http import DEFAULT_BASE_URL, HttpSession, Relocate, segment
from .models import SpriteInfo
from .sprite import Sprite

_PAGE = 50


def _url_settings(auth: str | None, private_access: str | None) -> dict[str, str]:
    settings = {"auth": auth, "private_access": private_access}
    return {key: value for key, value in settings.items() if value is not None}


class SpritesClient:
    """A connection to the Sprites API (or the local server) with one pooled HTTP session.

    Synchronous and thread-based, so it works inside a Jupyter kernel. Use it as a
    context manager, or call :meth:`close`.
    """

    def __init__(self, token: str, base_url: str = DEFAULT_BASE_URL, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None, hint: str | None = None,
                 relocate: Relocate | None = None,
                 on_wait: Callable[[str], None] | None = None) -> None:
        """``on_wait(text)`` is told when an operation waits unusually long (a sprite
        waking up); ``hint`` and ``relocate`` are for a server the caller manages (see
        :class:`~.http.HttpSession`)."""
        self._http = HttpSession(token, base_url, timeout=timeout, transport=transport,
                                 hint=hint, relocate=relocate, on_wait=on_wait)
        self._control = ControlPools(self._http)

    @property
    def base_url(self) -> str:
        return self._http.base_url

    @property
    def is_local(self) -> bool:
        """True when talking to a server on this machine (the local stand-in)."""
        return self._http.is_local

    def local_isolation(self) -> str | None:
        """How the local server isolates sprites (``sandbox`` or ``unsandboxed: REASON``,
        its ``Sprite-Local-Isolation`` header); None for a server that does not say."""
        response = self._http.request("HEAD", "/v1/sprites", what="ask the server's isolation")
        return response.headers.get("Sprite-Local-Isolation")

    def local_limits(self) -> str | None:
        """What the local server lets each sprite use, and what it does not limit (its
        ``Sprite-Local-Limits`` header); None for a server that does not say."""
        response = self._http.request("HEAD", "/v1/sprites", what="ask the server's limits")
        return response.headers.get("Sprite-Local-Limits")

    def __repr__(self) -> str:
        return f"<SpritesClient {self.base_url}>"

    def close(self) -> None:
        """Close the pooled HTTP and control connections (commands running keep theirs
        until they end)."""
        self._control.close()
        self._http.close()

    def __enter__(self) -> SpritesClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def sprite(self, name: str) -> Sprite:
        """A handle on sprite ``name`` (no request is sent)."""
        return Sprite(self, name)

    def create_sprite(self, name: str, *, url_auth: str | None = None,
                      private_access: str | None = None, labels: list[str] | None = None,
                      config: Mapping[str, Any] | None = None,
                      environment: Mapping[str, str] | None = None,
                      wait_for_capacity: bool = False) -> SpriteInfo:
        """Create a sprite.

        ``url_auth`` is ``"sprite"`` (default) or ``"public"``; ``private_access`` who
        else may reach a ``sprite`` URL (e.g. ``"admins"``). ``config`` asks for
        resources (``ram_mb``, ``cpus``, ``region``, ``storage_gb``; the service may
        ignore them), ``environment`` sets variables for the sprite, and
        ``wait_for_capacity`` waits for a machine rather than failing (up to 300 s).
        """
        body: dict[str, Any] = {"name": name}
        settings = _url_settings(url_auth, private_access)
        if settings:
            body["url_settings"] = settings
        if labels:
            body["labels"] = list(labels)
        if config:
            body["config"] = {key: value for key, value in config.items() if value is not None}
        if environment:
            body["environment"] = {str(key): str(value) for key, value in environment.items()}
        if wait_for_capacity:
            body["wait_for_capacity"] = True
        response = self._http.request("POST", "/v1/sprites", json=body,
                                      what=f"create sprite {name}",
                                      timeout=300.0 if wait_for_capacity else 120.0,
                                      conflict_words=("exist",))
        return SpriteInfo.from_json(response.json())

    def get_sprite(self, name: str) -> SpriteInfo:
        response = self._http.request("GET", f"/v1/sprites/{segment(name)}",
                                      what=f"get sprite {name}")
        return SpriteInfo.from_json(response.json())

    def list_sprites(self, prefix: str | None = None) -> list[SpriteInfo]:
        """Every sprite (all pages), optionally only names starting with ``prefix``."""
        sprites: list[SpriteInfo] = []
        params: dict[str, Any] = {"max_results": _PAGE}
        if prefix:
            params["prefix"] = prefix
        while True:
            body = self._http.request("GET", "/v1/sprites", params=params,
                                      what="list sprites").json()
            if not isinstance(body, dict):
                raise ProtocolError("list sprites: expected a JSON object")
            sprites += [SpriteInfo.from_json(item) for item in body.get("sprites") or ()]
            token = body.get("next_continuation_token")
            if not body.get("has_more") or not token:
                return sprites
            params["continuation_token"] = token

    def sprite_counts(self) -> SpriteCounts:
        """The organisation's running/warm/cold counters (and limits) that the sprite
        listing reports; one small request."""
        body = self._http.request("GET", "/v1/sprites", params={"max_results": 1},
                                  what="count sprites").json()
        if not isinstance(body, dict):
            raise ProtocolError("list sprites: expected a JSON object")
        return SpriteCounts.from_listing(body)

    def update_sprite(self, name: str, *, url_auth: str | None = None,
                      private_access: str | None = None,
                      labels: list[str] | None = None) -> SpriteInfo:
        """Change URL access and/or replace the labels (``[]`` clears them, sent as
        ``clear_labels`` as sprites-go does); omitted settings stay."""
        body: dict[str, Any] = {}
        settings = _url_settings(url_auth, private_access)
        if settings:
            body["url_settings"] = settings
        if labels:
            body["labels"] = list(labels)
        elif labels is not None:
            body["clear_labels"] = True
        response = self._http.request("PUT", f"/v1/sprites/{segment(name)}", json=body,
                                      what=f"update sprite {name}")
        if not response.content.strip():  # sprites-go reads no body here; servers may send none
            return self.get_sprite(name)
        return SpriteInfo.from_json(response.json())

    def delete_sprite(self, name: str) -> None:
        """Delete a sprite and its checkpoints."""
        self._http.request("DELETE", f"/v1/sprites/{segment(name)}",
                           what=f"delete sprite {name}")

    def upgrade_sprite(self, name: str) -> None:
        self._http.request("POST", f"/v1/sprites/{segment(name)}/upgrade",
                           what=f"upgrade sprite {name}", timeout=60.0)
