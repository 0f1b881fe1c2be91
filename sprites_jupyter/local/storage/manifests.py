"""Snapshot manifests: every path of a tree with its type, mode, mtime, size and ref.

A manifest is the JSON list of its entries, stored zlib-compressed under
``HOME/manifests/ab/cdef...`` and named by the SHA-256 of the JSON, so an unchanged tree
yields the same id and costs no space. Saving re-encodes only the entries that changed
since the sprite's previous manifest (each entry's JSON is remembered; the bytes are the
same as encoding the whole list at once), and the few manifests saved or loaded last
are kept decoded in memory, so a restore to a recent checkpoint decodes nothing.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zlib
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

_KEEP_DECODED = 4
_ROW = json.JSONEncoder(separators=(",", ":")).encode


class Entry(NamedTuple):
    """One path of a manifest (``.`` is the root). ``ref``: object ref or link target."""

    path: str
    kind: str  # "d", "f", "l"; in overlay upper layers also "w" (whiteout), "o" (opaque dir)
    mode: int
    mtime_ns: int
    size: int = 0
    ref: str = ""


class ManifestStore:
    """The manifests under ``directory``; files are written aside in ``incoming``."""

    def __init__(self, directory: Path, incoming: Path,
                 publish: Callable[[Path, Path], None]) -> None:
        self.directory = directory
        self._incoming = incoming
        self._publish = publish
        self._rows: dict[str, dict[tuple, str]] = {}  # sprite -> entry -> its JSON
        self._decoded: OrderedDict[str, list[Entry]] = OrderedDict()
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, manifest_id: str) -> Path:
        return self.directory / manifest_id[:2] / manifest_id[2:]

    def save(self, sprite: str, entries: list[Entry]) -> str:
        """Store sorted ``entries`` (if not stored yet); return the manifest id."""
        known = self._rows.get(sprite, {})
        rows: dict[tuple, str] = {}
        parts = []
        for entry in entries:
            row = known.get(entry)
            if row is None:
                row = _ROW(entry)
            rows[entry] = row
            parts.append(row)
        self._rows[sprite] = rows
        raw = f"[{','.join(parts)}]".encode()
        manifest_id = hashlib.sha256(raw).hexdigest()
        target = self.path(manifest_id)
        if not target.exists():
            with tempfile.NamedTemporaryFile(dir=self._incoming, delete=False) as temp:
                temp.write(zlib.compress(raw, 1))
            self._publish(Path(temp.name), target)
        self._remember(manifest_id, entries)
        return manifest_id

    def load(self, manifest_id: str) -> list[Entry]:
        """A stored manifest's entries; raises OSError or ValueError if missing or damaged."""
        entries = self._decoded.get(manifest_id)
        if entries is not None and self.path(manifest_id).exists():
            self._decoded.move_to_end(manifest_id)
            return list(entries)
        stored = self.path(manifest_id).read_bytes()
        try:
            raw = zlib.decompress(stored)
        except zlib.error:
            raw = b""
        if hashlib.sha256(raw).hexdigest() != manifest_id:
            raise ValueError(f"snapshot {manifest_id[:12]} is damaged")
        entries = [Entry(*row) for row in json.loads(raw)]
        self._remember(manifest_id, entries)
        return list(entries)

    def decoded(self, manifest_id: str) -> list[Entry] | None:
        """The manifest's entries if they are in memory (do not change them), else None."""
        return self._decoded.get(manifest_id)

    def forget(self, sprite: str) -> None:
        self._rows.pop(sprite, None)

    def _remember(self, manifest_id: str, entries: list[Entry]) -> None:
        self._decoded[manifest_id] = entries
        self._decoded.move_to_end(manifest_id)
        while len(self._decoded) > _KEEP_DECODED:
            self._decoded.popitem(last=False)
