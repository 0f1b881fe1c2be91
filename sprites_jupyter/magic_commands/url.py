"""Reaching a sprite's web apps: ``%sprite url [--public|--private]`` and
``%sprite open [PORT|SERVICE] [--embed [HEIGHT]] [--forward]``.

A sprite's URL routes to its HTTP service (the one with ``http_port``, else port
8080). ``open`` links there when it can; any other port, or a browser that cannot
reach the URL (JupyterHub, or ``--forward`` for a remote kernel), goes through a
port forwarded from the kernel's machine, and ``open`` says so. An app embedded from
a private local URL goes through a forward too: a one-time sign-in link in an
iframe would be saved with the notebook, dead, for whoever reads it.
"""

from __future__ import annotations

import html
import importlib.util
import os
from argparse import Namespace
from dataclasses import dataclass

from IPython.core.error import UsageError

from ..client import PortForward, Service, Sprite, SpriteInfo, sign_in_link
from .context import CommandContext
from .forwarding import start_forward
from .registry import Names, argument, exclusive, subcommand

__all__ = ["Embedded", "Link", "SpriteUrl", "open_app", "url"]

URL_PORT = 8080  # where a sprite's URL goes when no service has an http_port
AUTH_MEANING = {
    "public": "public: anyone who has the link can open it",
    "sprite": "private: only your organisation's members and tokens can open it",
}
LOCAL_AUTH_MEANING = {
    "public": "public: anything on this machine can open it",
    "sprite": "private: it needs the token (%sprite open prints a one-time sign-in link)",
}


@dataclass(frozen=True)
class SpriteUrl:
    """A sprite's URL and who may open it; a clickable link in a notebook."""

    sprite: str
    url: str
    auth: str
    local: bool = False

    @property
    def meaning(self) -> str:
        meanings = LOCAL_AUTH_MEANING if self.local else AUTH_MEANING
        return meanings.get(self.auth, f"auth: {self.auth}")

    def __repr__(self) -> str:
        return f"{self.url}  ({self.meaning})"

    def _repr_html_(self) -> str:
        return (f'<a href="{html.escape(self.url)}" target="_blank">{html.escape(self.url)}</a>'
                f" ({html.escape(self.meaning)})")


@dataclass(frozen=True)
class Link:
    """A link to open in the browser: clickable in a notebook, the URL as text elsewhere."""

    url: str
    title: str

    def __repr__(self) -> str:
        return f"{self.title}: {self.url}"

    def _repr_html_(self) -> str:
        return (f'{html.escape(self.title)}: <a href="{html.escape(self.url)}" '
                f'target="_blank">{html.escape(self.url)}</a>')


@dataclass(frozen=True)
class Embedded:
    """A web app shown in the cell (an iframe); outside a notebook, its link as text."""

    url: str
    title: str
    height: int

    def __repr__(self) -> str:
        return f"{self.title}: {self.url} (shown embedded in a notebook)"

    def _repr_html_(self) -> str:
        return (f'<iframe src="{html.escape(self.url)}" title="{html.escape(self.title)}" '
                f'width="100%" height="{self.height}" frameborder="0"></iframe>')


@subcommand("url", "the sprite's URL and who may open it: url [--public | --private]",
            exclusive(argument("--public", action="store_true",
                               help="anyone may open the URL"),
                      argument("--private", action="store_true",
                               help="only with the token / a signed-in browser (the default)")))
def url(ctx: CommandContext, args: Namespace) -> SpriteUrl:
    """The sprite's URL and auth; ``--public`` / ``--private`` change who may open it."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "url", "public" if args.public else
                       "private" if args.private else ""):
        if args.public or args.private:
            info = ctx.client.update_sprite(handle.name,
                                            url_auth="public" if args.public else "sprite")
        else:
            info = handle.info()
    return SpriteUrl(info.name, info.url, info.auth or "sprite", ctx.client.is_local)


def _url_port(services: list[Service]) -> int:
    return next((s.http_port for s in services if s.http_port), URL_PORT)


def _target_port(target: str | None, services: list[Service], url_port: int) -> int:
    if target is None:
        return url_port
    if target.isdigit():
        port = int(target)
        if not 1 <= port <= 65535:
            raise UsageError(f"%sprite open: port {port} is not from 1 to 65535")
        return port
    service = next((s for s in services if s.name == target), None)
    if service is None:
        names = ", ".join(s.name for s in services) or "none"
        raise UsageError(f"%sprite open: no port or service {target!r} (services: {names})")
    if not service.http_port:
        raise UsageError(f"%sprite open: service {target} has no http_port: give its port "
                         "(%sprite open PORT)")
    return service.http_port


def _through_url(ctx: CommandContext, handle: Sprite, info: SpriteInfo) -> tuple[str, str]:
    """The link to the sprite URL, and the line that says what the browser needs."""
    auth = info.auth or "sprite"
    if auth == "public":
        return info.url, f"Sprite {handle.name}'s URL is public."
    if ctx.client.is_local:
        return sign_in_link(handle), ("Sprite URL is private: this one-time link signs the "
                                      "browser in (it works once, within 5 minutes).")
    return info.url, ("The URL is private: the browser must be signed in to Sprites with "
                      f"access to {handle.name} (or run %sprite url --public).")


def _through_forward(ctx: CommandContext, handle: Sprite, port: int,
                     why: str) -> tuple[str, str]:
    forward = ctx.forwards.find(handle.name, port) or start_forward(ctx, handle, port)
    link, where = _browser_link(forward)
    return link, (f"{why}: forwarded through localhost:{forward.local_port} on the kernel's "
                  f"machine{where} (stop it with %sprite forward stop {port}).")


def _browser_link(forward: PortForward) -> tuple[str, str]:
    """The link a browser follows to a forwarded port, and where it goes."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix and importlib.util.find_spec("jupyter_server_proxy") is not None:
        return f"{prefix.rstrip('/')}/proxy/{forward.local_port}/", ", via jupyter-server-proxy"
    if prefix:
        return forward.url, "; install jupyter-server-proxy to reach it from this browser"
    return forward.url, ""


@subcommand("open", "link to a web app in the sprite: open [PORT | SERVICE] [--embed [HEIGHT]]",
            argument("target", nargs="?", metavar="PORT|SERVICE", complete=Names.SERVICES,
                     help="a port, or a service with an http_port (default: what the URL "
                          "serves)"),
            argument("--embed", nargs="?", type=int, const=480, metavar="HEIGHT",
                     help="show the app in the cell (HEIGHT pixels, default 480)"),
            argument("--forward", action="store_true",
                     help="go through a forwarded port even if the browser could reach the "
                          "URL (a remote kernel)"))
def open_app(ctx: CommandContext, args: Namespace) -> None:
    """Link to (or embed) a web app in the sprite."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "open", args.target or ""):
        services = handle.list_services()
        url_port = _url_port(services)
        port = _target_port(args.target, services, url_port)
        if port != url_port:
            why = f"Port {port} is not the one the sprite URL serves ({url_port})"
            link, note = _through_forward(ctx, handle, port, why)
        elif args.forward or os.environ.get("JUPYTERHUB_SERVICE_PREFIX"):
            why = ("Asked to forward" if args.forward
                   else "The browser cannot reach the sprite URL from JupyterHub")
            link, note = _through_forward(ctx, handle, port, why)
        else:
            info = handle.info()
            if args.embed and ctx.client.is_local and (info.auth or "sprite") != "public":
                why = "Embedded without a one-time sign-in link (it would be saved, dead)"
                link, note = _through_forward(ctx, handle, port, why)
            else:
                link, note = _through_url(ctx, handle, info)
    print(note)
    title = f"{handle.name} port {port}"
    ctx.show(Embedded(link, title, args.embed) if args.embed else Link(link, title))
