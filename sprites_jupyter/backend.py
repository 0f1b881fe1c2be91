"""Which server the notebook talks to: a token means the Sprites API, no token the local
server (found, or started in the background).

This choice lives on the notebook side: the API client only speaks the protocol and
never imports the embedded server.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .client import ConnectionFailed, SpritesClient, SpritesError
from .client.http import DEFAULT_BASE_URL, LOCAL_HINT, is_loopback_url

__all__ = ["client_from_env"]


def _local_server() -> tuple[str, str]:
    """The URL and token of the local server for the default home, started if needed."""
    from .local.launcher import LaunchError, ensure_server

    try:
        server = ensure_server()
    except LaunchError as exc:
        raise ConnectionFailed(str(exc), url="local server") from None
    return server.url, server.token


def client_from_env(*, timeout: float = 30.0,
                    on_wait: Callable[[str], None] | None = None) -> SpritesClient:
    """``SPRITES_TOKEN`` (or ``SPRITE_TOKEN``) and ``SPRITES_API_URL``; no token: local.

    Without a token the local server is used, found or started in the background,
    and found or started again should it stop answering.
    """
    token = os.environ.get("SPRITES_TOKEN") or os.environ.get("SPRITE_TOKEN")
    url = os.environ.get("SPRITES_API_URL")
    if token:
        hint = None
        if url and is_loopback_url(url):
            hint = (f"{LOCAL_HINT} (SPRITES_API_URL is {url}), or unset SPRITES_TOKEN "
                    "and SPRITES_API_URL to let the extension start one")
        return SpritesClient(token, url or DEFAULT_BASE_URL, timeout=timeout, hint=hint,
                             on_wait=on_wait)
    if url:
        raise SpritesError(f"SPRITES_API_URL is {url} but no token is set: set "
                           "SPRITES_TOKEN, or unset SPRITES_API_URL to use the local server")
    url, token = _local_server()
    return SpritesClient(token, url, timeout=timeout, relocate=_local_server, hint="",
                         on_wait=on_wait)
