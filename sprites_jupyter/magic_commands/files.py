"""File subcommands: ``put``, ``get`` and ``ls``."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from ..frames import files_frame
from .context import CommandContext
from .diff import ls_checkpoint, split_checkpoint_path
from .registry import argument, subcommand

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["get", "ls", "put"]


@subcommand("put", "upload: put LOCAL REMOTE", argument("source"), argument("destination"))
def put(ctx: CommandContext, args: Namespace) -> None:
    """Upload a local file or folder to the sprite."""
    if not Path(args.source).exists():
        raise UsageError(f"No local file or folder {args.source}")
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "put", args.destination):
        handle.upload(args.source, args.destination)
    print(f"Uploaded {args.source} to {handle.name}:{args.destination}")


@subcommand("get", "download: get REMOTE LOCAL", argument("source"), argument("destination"))
def get(ctx: CommandContext, args: Namespace) -> None:
    """Download a file or folder from the sprite."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "get", args.source):
        handle.download(args.source, args.destination)
    print(f"Downloaded {handle.name}:{args.source} to {args.destination}")


@subcommand("ls", "list a directory (DataFrame): ls [PATH | A:PATH]",
            argument("path", nargs="?", default="/home/sprite",
                     help="a path in the sprite, or A:PATH for how it was in checkpoint A"))
def ls(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """A directory's entries as a DataFrame (``A:PATH``: as they were in checkpoint A)."""
    handle = ctx.sprite(args.sprite)
    if in_checkpoint := split_checkpoint_path(args.path):
        return ls_checkpoint(ctx, handle, *in_checkpoint)
    with ctx.operation(handle.name, "ls", args.path):
        return files_frame(handle.list_dir(args.path))
