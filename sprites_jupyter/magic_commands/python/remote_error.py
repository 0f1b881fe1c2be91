"""The exception a ``%%sprite_python`` cell raised on the sprite, shown with its remote
frames: raised by the live cell and by the replay of a kept one."""

from __future__ import annotations

__all__ = ["RemotePythonError"]


class RemotePythonError(Exception):
    """An exception raised by a cell on the sprite; IPython shows the remote frames."""

    def __init__(self, sprite: str, ename: str, evalue: str, traceback: list[str]) -> None:
        super().__init__(f"{ename}: {evalue}" if evalue else ename)
        self.sprite = sprite
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback

    def _render_traceback_(self) -> list[str]:
        lines = "".join(self.traceback).rstrip("\n").splitlines()
        return [f"On sprite {self.sprite}:", *(lines or [str(self)])]
