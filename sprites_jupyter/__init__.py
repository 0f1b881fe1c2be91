"""Sprites for Jupyter: run cells in persistent, checkpointable Linux sandboxes.

``%load_ext sprites_jupyter`` registers ``%sprite`` and ``%%sprite_exec``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["SpriteMagics", "__version__", "load_ipython_extension",
           "unload_ipython_extension"]

_COMPLETED = ("%sprite", "%%sprite_exec", "%%sprite_python")


def load_ipython_extension(shell: Any) -> None:
    """Register the magics, their settings (``%config SpriteMagics``) and completion."""
    from .magic_commands.completion import SpriteCompleter
    from .magics import SpriteMagics

    magics = SpriteMagics(shell=shell)
    shell.register_magics(magics)
    shell.configurables.append(magics)
    completer = SpriteCompleter(magics.context)
    for command in _COMPLETED:
        shell.set_hook("complete_command", completer, str_key=command)


def unload_ipython_extension(shell: Any) -> None:
    """Remove the magics, their completion, and close their client and port forwards
    (Python sessions on sprites keep running: ``%sprite python attach`` reconnects)."""
    from .magic_commands.completion import SpriteCompleter
    from .magic_commands.python.lifecycle import detach_all

    for magics in [c for c in shell.configurables if type(c).__name__ == "SpriteMagics"]:
        detach_all(magics.context)
        magics.context.stop_tracking_cells()
        magics.close()
        magics.context.forwards.close()
        shell.configurables.remove(magics)
    shell.magics_manager.magics["line"].pop("sprite", None)
    shell.magics_manager.magics["cell"].pop("sprite_exec", None)
    shell.magics_manager.magics["cell"].pop("sprite_python", None)
    for command in _COMPLETED:
        chain = shell.Completer.custom_completers.strs.get(command)
        if chain is not None:
            chain.chain = [(priority, hook) for priority, hook in chain.chain
                           if not isinstance(getattr(hook, "__func__", hook), SpriteCompleter)]


def __getattr__(name: str) -> Any:
    if name == "SpriteMagics":
        from .magics import SpriteMagics

        return SpriteMagics
    raise AttributeError(name)
