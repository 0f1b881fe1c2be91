"""Where the settings come from: traitlets on ``SpriteMagics`` and the environment.

``SPRITES_TOKEN`` (or ``SPRITE_TOKEN``) and ``SPRITES_API_URL`` choose the
backend (no token: the local server); every other setting is a trait, so
``%config SpriteMagics.<name> = …`` and ipython_config files work.
"""

from __future__ import annotations

import os
from typing import Any

from traitlets import Bool, CaselessStrEnum, Float, Int, Unicode
from traitlets.config import Configurable

__all__ = ["NO_WIDGETS_ENV", "SpriteSettings", "widget_frontend"]

NO_WIDGETS_ENV = "SPRITES_JUPYTER_NO_WIDGETS"


class SpriteSettings(Configurable):
    """The configurable settings of the ``%sprite`` magics."""

    sprite = Unicode("", help="The current sprite (what `%sprite use NAME` sets).").tag(
        config=True)
    api_url = Unicode("", help="API base URL; empty means SPRITES_API_URL, or the local "
                               "server when no token is set.").tag(config=True)
    timeout = Float(30.0, help="Seconds to wait for each API request.").tag(config=True)
    max_log_lines = Int(1000, help="Lines kept (and shown) by each live log panel.").tag(
        config=True)
    confirm_restore = Bool(True, help="Ask before `%sprite restore` replaces a sprite's "
                                      "state (`--yes` skips the question).").tag(config=True)
    python = Unicode("", help="The interpreter `%%sprite_python` sessions run on in the "
                              "sprite (a path or a name on its PATH); empty means python3."
                     ).tag(config=True)
    checkpoint_cells = Bool(False, help="Take a checkpoint before every %%sprite_exec and "
                                        "%%sprite_python cell, so `%sprite undo` can take "
                                        "the cell back (`%sprite undo on|off`).").tag(
        config=True)
    cell_checkpoints_kept = Int(20, min=1, help="Per-cell checkpoints kept per sprite (the "
                                                "oldest are deleted; never the user's own)."
                                ).tag(config=True)
    cells_outlive_kernel = Bool(False, help="Run each %%sprite_exec and %%sprite_python "
                                            "cell so that it keeps running when the kernel "
                                            "goes, its output (displays too) kept on the "
                                            "sprite for `%sprite attach` and `%sprite "
                                            "python attach`.").tag(config=True)
    cell_output_kept = Int(16 * 1024 * 1024, min=4096,
                           help="Bytes of a kept cell's output stored on the sprite (the "
                                "oldest go first, said in one line on replay).").tag(config=True)
    journal_location = Unicode(
        "", help="Where `%sprite history` is kept for the next kernel, per sprite and "
                 "notebook: 'sprite' (a file on it), 'none', a directory, or '' (the local "
                 "home for the local server, the sprite for the Sprites API).").tag(
        config=True)
    widgets = CaselessStrEnum(
        ["auto", "on", "off"], default_value="auto",
        help="Use ipywidgets: 'auto' when a widget frontend is there (and "
             f"{NO_WIDGETS_ENV} is unset), 'on' always, 'off' for plain text.",
    ).tag(config=True)


def widget_frontend(shell: Any, setting: str) -> bool:
    """Whether to draw widgets rather than their text fallbacks.

    'auto' means: a kernel is attached (a notebook or Lab, not terminal IPython)
    and ``SPRITES_JUPYTER_NO_WIDGETS`` is not set to a true value.
    """
    if setting == "on":
        return True
    if setting == "off":
        return False
    if os.environ.get(NO_WIDGETS_ENV, "").strip().lower() not in ("", "0", "false", "no"):
        return False
    return getattr(shell, "kernel", None) is not None
