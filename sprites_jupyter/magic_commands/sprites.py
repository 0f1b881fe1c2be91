"""Subcommands about sprites themselves: status, help, use, list, create, destroy, labels,
upgrade."""

from __future__ import annotations

from argparse import Namespace
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from ..client import AuthError, Conflict, ConnectionFailed, NotFound
from ..frames import SPRITE_SUMMARY_COLUMNS, sprites_frame
from .context import CommandContext
from .parsing import subcommand_help
from .registry import Names, action, argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["create", "destroy", "help_on", "labels", "listing", "status", "upgrade", "use"]


@subcommand("status", "backend, current sprite and its status (also plain %sprite)",
            sprite=False)
def status(ctx: CommandContext, args: Namespace) -> None:
    """Print the backend, the current sprite and its status, checking the backend with
    one request (a rejected token or an unreachable URL fails here, not later)."""
    client = ctx.client
    backend = f"local server at {client.base_url}" if client.is_local else client.base_url
    name = ctx.settings.sprite
    limits = None
    with ctx.operation(name, "status"):
        try:
            info = client.get_sprite(name) if name else None
            if not name:
                client.list_sprites()
            isolation = client.local_isolation() if client.is_local else None
            if isolation and isolation != "sandbox":
                backend = f"local server ({isolation}) at {client.base_url}"
            limits = client.local_limits() if client.is_local else None
        except AuthError as error:
            raise UsageError(f"Backend {client.base_url}: token rejected ({error}): check "
                             "SPRITES_TOKEN") from None
        except ConnectionFailed as error:
            raise UsageError(f"Backend {client.base_url}: {error}") from None
        except NotFound:
            info = None
    print(f"Backend: {backend}")
    if limits:
        print(f"Limits: {limits.removeprefix('sprite limits: ')}")
    if not name:
        print("Sprite: none selected (run %sprite use NAME)")
    elif info is None:
        print(f"Sprite: {name} (not found: %sprite use {name} --create creates it)")
    else:
        print(f"Sprite: {info.name} ({info.status or 'unknown status'})")


@subcommand("help", "help on a subcommand: %sprite help SUBCOMMAND",
            argument("topic", nargs="?", complete=Names.SUBCOMMANDS, help="a subcommand"),
            sprite=False)
def help_on(ctx: CommandContext, args: Namespace) -> None:
    print(subcommand_help(args.topic))


@subcommand("use", "select the current sprite: use NAME [--create]",
            argument("name", complete=Names.SPRITES),
            argument("--create", action="store_true",
                     help="create the sprite if it does not exist"),
            sprite=False)
def use(ctx: CommandContext, args: Namespace) -> None:
    """Make NAME the current sprite, creating it with ``--create``."""
    with ctx.operation(args.name, "use") as journaled:
        try:
            info = ctx.client.get_sprite(args.name)
        except NotFound:
            if not args.create:
                raise UsageError(f"Sprite {args.name} not found: add --create to create it "
                                 f"(%sprite use {args.name} --create)") from None
            info = ctx.client.create_sprite(args.name)
            journaled.set("ok: created")
    ctx.settings.sprite = info.name
    print(f"Using sprite {info.name} ({info.status or 'unknown status'})")


@subcommand("list", "all sprites (DataFrame): list [--prefix P] [--all]",
            argument("--prefix", help="only names starting with this"),
            argument("--all", action="store_true",
                     help="every column (id, organization, updated_at too)"),
            sprite=False)
def listing(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """All sprites as a DataFrame: the useful columns, or every one with ``--all``."""
    with ctx.operation("", "list", args.prefix or ""):
        frame = sprites_frame(ctx.client.list_sprites(prefix=args.prefix))
    return frame if args.all else frame[SPRITE_SUMMARY_COLUMNS]


@subcommand("create", "create a sprite: create NAME [--exist-ok]",
            argument("name"),
            argument("--exist-ok", action="store_true",
                     help="succeed (and say so) when the sprite already exists"),
            sprite=False)
def create(ctx: CommandContext, args: Namespace) -> None:
    """Create a sprite (it does not become current; ``use`` does that)."""
    with ctx.operation(args.name, "create") as journaled:
        try:
            info = ctx.client.create_sprite(args.name)
        except Conflict:
            if not args.exist_ok or not ctx.sprite_exists(args.name):
                raise
            journaled.set("ok: already existed")
            print(f"Sprite {args.name} already exists; select it with %sprite use {args.name}")
            return
    print(f"Created sprite {info.name}; select it with %sprite use {info.name}")


@subcommand("destroy", "delete a sprite and everything in it: destroy NAME --yes",
            argument("name", complete=Names.SPRITES),
            argument("--yes", action="store_true", help="confirm: the sprite cannot be recovered"),
            sprite=False)
def destroy(ctx: CommandContext, args: Namespace) -> None:
    """Delete a sprite and all its checkpoints; needs ``--yes``."""
    if not args.yes:
        raise UsageError(f"Destroying deletes sprite {args.name} with all its files and "
                         f"checkpoints: add --yes (%sprite destroy {args.name} --yes)")
    with ctx.operation(args.name, "destroy"):
        ctx.client.delete_sprite(args.name)
    if ctx.settings.sprite == args.name:
        ctx.settings.sprite = ""
    print(f"Destroyed sprite {args.name}")


@subcommand("labels", "the sprite's labels: labels [add L … | remove L … | clear]",
            actions=(action("add", "add labels: add LABEL …",
                            argument("labels", nargs="+", metavar="LABEL")),
                     action("remove", "remove labels: remove LABEL …",
                            argument("labels", nargs="+", metavar="LABEL")),
                     action("clear", "remove every label")))
def labels(ctx: CommandContext, args: Namespace) -> None:
    """Show the sprite's labels, or add, remove or clear them (one update each)."""
    name = ctx.target(args.sprite)
    given = list(dict.fromkeys(getattr(args, "labels", None) or ()))
    with ctx.operation(name, "labels", " ".join([args.action or "", *given]).strip()):
        current = list(ctx.client.get_sprite(name).labels)
        if args.action is not None:
            if args.action == "remove":
                missing = [label for label in given if label not in current]
                if missing:
                    raise UsageError(f"Sprite {name} has no label {', '.join(missing)} "
                                     f"(its labels: {', '.join(current) or 'none'})")
            wanted = {"add": current + [lb for lb in given if lb not in current],
                      "remove": [lb for lb in current if lb not in given],
                      "clear": []}[args.action]
            current = list(ctx.client.update_sprite(name, labels=wanted).labels)
    print(f"Labels of sprite {name}: {', '.join(current) or 'none'}")


@subcommand("upgrade", "move the sprite to the newest environment release")
def upgrade(ctx: CommandContext, args: Namespace) -> None:
    """Ask the service to move the sprite to the newest environment release."""
    name = ctx.target(args.sprite)
    with ctx.operation(name, "upgrade"):
        ctx.client.upgrade_sprite(name)
    print(f"Upgraded sprite {name} to the newest environment")
