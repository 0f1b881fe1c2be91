"""Which sprite a kernel runs in when its kernelspec names none.

In order: the notebook's metadata (``"sprites": {"sprite": NAME}``, read from the file
Jupyter's server names in ``JPY_SESSION_NAME``), ``$SPRITES_KERNEL_SPRITE``, else the
sprite ``jupyter``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

DEFAULT_SPRITE = "jupyter"
SPRITE_ENV = "SPRITES_KERNEL_SPRITE"


def choose_sprite(env: Mapping[str, str], cwd: str | None) -> str:
    """The sprite for a kernel started with ``env`` in ``cwd`` (the notebook's folder)."""
    notebook = env.get("JPY_SESSION_NAME", "")
    return (notebook_sprite(notebook, cwd) or env.get(SPRITE_ENV)
            or os.environ.get(SPRITE_ENV) or DEFAULT_SPRITE)


def notebook_sprite(notebook: str, cwd: str | None) -> str:
    """``metadata.sprites.sprite`` of the notebook, or "" when it names none."""
    if not notebook.endswith(".ipynb"):
        return ""
    path = Path(notebook)
    if not path.is_absolute():
        path = Path(cwd or ".") / path.name
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    settings = (document.get("metadata") or {}).get("sprites") if isinstance(document,
                                                                             dict) else None
    sprite = settings.get("sprite") if isinstance(settings, dict) else None
    return sprite.strip() if isinstance(sprite, str) else ""
