"""File subcommands: ``put``, ``get`` and ``ls``."""

from __future__ import annotations

from argparse import Namespace
from pathlib import Path
from typing import TYPE_CHECKING

from IPython.core.error import UsageError

from ..frames import files_frame
from .context import CommandContext
from .diff import ls_checkpoint, split_checkpoint_path

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["get", "ls", "put"]


def put(ctx: CommandContext, args: Namespace) -> None:
    """Upload a local file or folder to the sprite."""
    if not Path(args.source).exists():
        raise UsageError(f"No local file or folder {args.source}")
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "put", args.destination):
        handle.upload(args.source, args.destination)
    print(f"Uploaded {args.source} to {handle.name}:{args.destination}")


def get(ctx: CommandContext, args: Namespace) -> None:
    """Download a file or folder from the sprite."""
    handle = ctx.sprite(args.sprite)
    with ctx.operation(handle.name, "get", args.source):
        handle.download(args.source, args.destination)
    print(f"Downloaded {handle.name}:{args.source} to {args.destination}")


def ls(ctx: CommandContext, args: Namespace) -> pd.DataFrame:
    """A directory's entries as a DataFrame (``A:PATH``: as they were in checkpoint A)."""
    handle = ctx.sprite(args.sprite)
    if in_checkpoint := split_checkpoint_path(args.path):
        return ls_checkpoint(ctx, handle, *in_checkpoint)
    with ctx.operation(handle.name, "ls", args.path):
        return files_frame(handle.list_dir(args.path))
