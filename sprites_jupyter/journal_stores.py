"""Where ``%sprite history`` is kept between kernels, chosen by ``SpriteMagics.journal_location``.

The local server's journals live in its home (outside every sprite, so a restore
does not rewind them); for the Sprites API they live on the sprite itself, which is
what a new kernel, on any machine, can reach.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .journal import JournalEntry, JournalStore, decode_entries, encode_entries

__all__ = ["DirectoryJournalStore", "SpriteJournalStore", "choose_journal_store"]

SPRITE_JOURNALS = "/home/sprite/.sprites_jupyter/journal"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(notebook: str) -> str:
    return _UNSAFE.sub("_", notebook or "ipython") + ".jsonl"


class DirectoryJournalStore:
    """``ROOT/SPRITE/NOTEBOOK.jsonl`` on this machine."""

    def __init__(self, root: Path, notebook: str) -> None:
        self.root = root
        self.file_name = _file_name(notebook)

    def _path(self, sprite: str) -> Path:
        return self.root / _UNSAFE.sub("_", sprite) / self.file_name

    def load(self, sprite: str) -> list[JournalEntry]:
        try:
            return decode_entries(self._path(sprite).read_bytes())
        except FileNotFoundError:
            return []

    def save(self, sprite: str, entries: list[JournalEntry]) -> None:
        path = self._path(sprite)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(encode_entries(entries))
        os.replace(partial, path)


class SpriteJournalStore:
    """``~/.sprites_jupyter/journal/NOTEBOOK.jsonl`` on the sprite, through the file API."""

    def __init__(self, sprite: Callable[[str], Any], notebook: str) -> None:
        self._sprite = sprite
        self.path = f"{SPRITE_JOURNALS}/{_file_name(notebook)}"

    def load(self, sprite: str) -> list[JournalEntry]:
        return decode_entries(self._sprite(sprite).read_file(self.path))

    def save(self, sprite: str, entries: list[JournalEntry]) -> None:
        self._sprite(sprite).write_file(self.path, encode_entries(entries), mode="0600")


def choose_journal_store(location: str, notebook: str, *, default_local: bool,
                         remote_api: bool, sprite: Callable[[str], Any]
                         ) -> JournalStore | None:
    """The store ``location`` names: ``"sprite"``, ``"none"``, a directory, or ``""``
    (the local home for the local server the extension starts, the sprite for the
    Sprites API, nothing for a local server reached by URL)."""
    if location == "none":
        return None
    if location == "sprite":
        return SpriteJournalStore(sprite, notebook)
    if location:
        return DirectoryJournalStore(Path(location).expanduser(), notebook)
    if default_local:
        from .local.storage.home import default_home

        return DirectoryJournalStore(default_home() / "journals", notebook)
    return SpriteJournalStore(sprite, notebook) if remote_api else None
