"""A checkpoint named by its id or by its comment, wherever a magic takes one.

Ids change when a notebook is re-run (``v3`` one day, ``v7`` the next); the comment a
notebook gave (``%sprite checkpoint -m baseline``) does not. An id always wins; a
comment works when it names exactly one checkpoint.
"""

from __future__ import annotations

import shlex

from IPython.core.error import UsageError

from ..client import Checkpoint, NotFound, Sprite
from .errors import describe_ids

__all__ = ["checkpoint_names", "resolve_checkpoint"]

_SHOWN_CANDIDATES = 6


def resolve_checkpoint(handle: Sprite, reference: str) -> Checkpoint:
    """The checkpoint whose id, else whose comment, is ``reference``; a one-line
    UsageError when none is, or when the comment is on several (listing them)."""
    try:
        return handle.get_checkpoint(reference)
    except NotFound:
        listed = handle.list_checkpoints(include_auto=True)
    named = [c for c in listed if c.comment == reference]
    if len(named) == 1:
        return named[0]
    if named:
        shown = ", ".join(f"{c.id} ({_taken(c)})" for c in named[:_SHOWN_CANDIDATES])
        more = f" and {len(named) - _SHOWN_CANDIDATES} more" if len(named) > _SHOWN_CANDIDATES \
            else ""
        raise UsageError(f"{len(named)} checkpoints of sprite {handle.name} have the comment "
                         f"{reference!r}: {shown}{more}; give the id of the one you mean")
    raise UsageError(f"Checkpoint {reference} not found on sprite {handle.name} "
                     f"(have {describe_ids([c.id for c in listed])})")


def checkpoint_names(handle: Sprite) -> list[str]:
    """What completion offers: every id, then each comment that names one checkpoint
    (quoted when it has spaces, as the magic's arguments are split)."""
    listed = handle.list_checkpoints(include_auto=True)
    comments = [c.comment for c in listed if c.comment]
    unique = [text for text in dict.fromkeys(comments) if comments.count(text) == 1]
    ids = {c.id for c in listed}
    return [c.id for c in listed] + [shlex.quote(text) for text in unique if text not in ids]


def _taken(checkpoint: Checkpoint) -> str:
    created = checkpoint.create_time
    return f"{created:%Y-%m-%d %H:%M:%S} UTC" if created is not None else "time unknown"
