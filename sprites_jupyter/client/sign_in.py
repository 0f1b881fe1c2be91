"""One-time sign-in links for a sprite's URL (a local-server extension to the API)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import ProtocolError

if TYPE_CHECKING:
    from .sprite import Sprite


def sign_in_link(sprite: Sprite) -> str:
    """A link that, opened once in a browser, lets that browser reach the sprite's private
    URL (it sets a cookie for it). Only the local server offers this: on the real service
    the browser signs in to Sprites itself."""
    response = sprite._http.request("POST", sprite._path("/url/login"),
                                    what=f"make a sign-in link for {sprite.name}")
    body = response.json()
    link = body.get("url") if isinstance(body, dict) else None
    if not isinstance(link, str):
        raise ProtocolError(f"make a sign-in link for {sprite.name}: no url in the answer")
    return link
