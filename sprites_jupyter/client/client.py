"""``SpritesClient``: configuration, sprite management, and :class:`Sprite` handles."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from .errors import ProtocolError
from .http import DEFAULT_BASE_URL, HttpSession, Relocate, segment
from .models import SpriteInfo
from .sprite import Sprite

_PAGE = 50


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

    def __repr__(self) -> str:
        return f"<SpritesClient {self.base_url}>"

    def close(self) -> None:
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
                      labels: list[str] | None = None) -> SpriteInfo:
        """Create a sprite; ``url_auth`` is ``"sprite"`` (default) or ``"public"``."""
        body: dict[str, Any] = {"name": name}
        if url_auth is not None:
            body["url_settings"] = {"auth": url_auth}
        if labels:
            body["labels"] = list(labels)
        response = self._http.request("POST", "/v1/sprites", json=body,
                                      what=f"create sprite {name}", timeout=120.0,
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

    def update_sprite(self, name: str, *, url_auth: str | None = None,
                      labels: list[str] | None = None) -> SpriteInfo:
        """Change URL access and/or replace the labels (``[]`` clears them, sent as
        ``clear_labels`` as sprites-go does); omitted settings stay."""
        body: dict[str, Any] = {}
        if url_auth is not None:
            body["url_settings"] = {"auth": url_auth}
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
