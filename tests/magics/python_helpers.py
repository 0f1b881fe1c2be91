"""Helpers for the ``%%sprite_python`` tests: captured rich output, what the sprite has."""

from __future__ import annotations

from typing import Any

from IPython.utils.capture import capture_output

from sprites_jupyter.magic_commands.python.lifecycle import sessions_of


def run_captured(ip: Any, source: str) -> tuple[Any, list[dict[str, Any]], str, str]:
    """Run a cell; its result, the MIME bundles it published, its stdout and stderr."""
    with capture_output() as captured:
        result = ip.shell.run_cell(source)
    return result, [output.data for output in captured.outputs], captured.stdout, \
        captured.stderr


def sprite_has(ip: Any, sprite: str, module: str) -> bool:
    """Whether the sprite's python3 can import ``module`` (as its agent reported)."""
    session = sessions_of(ip.magics.context).get(sprite)
    if session is None:
        ip.ok("%%sprite_python\npass\n")
        session = sessions_of(ip.magics.context)[sprite]
    return bool(session.info.get("has", {}).get(module))

