"""Snapshot manifests: every path of a tree with its type, mode, mtime, size and ref.

A manifest lists its entries sorted by path, in pages: a page ends after an entry whose
path's CRC-32 ends in :data:`_PAGE_BITS` zero bits (about 512 entries a page, and the
same boundaries whatever changes elsewhere). A page is the JSON list of its entries,
stored zlib-compressed under ``HOME/manifests/pages/ab/cdef...`` and named by the SHA-256
of that JSON; the manifest is ``{"pages": [...]}``, stored the same way under
``HOME/manifests/ab/cdef...``, so an unchanged tree
yields the same id and costs no space, and a changed one stores only the pages that
changed. Saving re-encodes only the entries that changed since the sprite's previous
manifest (each entry's JSON is remembered) and hashes again only the pages that did (a
page of the same rows, still stored, is the same page), and the few manifests saved or loaded last
are kept decoded in memory, so a restore to a recent checkpoint decodes nothing.
Manifests written whole by older servers (the JSON list itself) are still read.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import NamedTuple

from .objects import ObjectStore

_KEEP_DECODED = 4
_PAGE_BITS = 9
_PAGE_MASK = (1 << _PAGE_BITS) - 1
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
    """The manifests under ``directory``, their pages in ``directory/pages``; files are
    written aside in the object store's ``incoming``."""

    def __init__(self, directory: Path, objects: ObjectStore) -> None:
        self.directory = directory
        self.pages_directory = directory / "pages"
        self._objects = objects
        self._stored: set[str] = set()  # pages known to be stored (this run)
        # sprite -> path -> (entry, its JSON, whether a page ends after it)
        self._rows: dict[str, dict[str, tuple[Entry, str, bool]]] = {}
        self._pages: dict[str, dict[str, tuple[list[str], str]]] = {}  # sprite -> end -> page
        self._decoded: OrderedDict[str, list[Entry]] = OrderedDict()
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, manifest_id: str) -> Path:
        return self.directory / manifest_id[:2] / manifest_id[2:]

    def _page_path(self, page: str) -> Path:
        return self.pages_directory / page[:2] / page[2:]

    def keep_presence(self, kept: set[str]) -> None:
        """After a collection deleted every page not in ``kept``."""
        self._stored &= kept

    def _write(self, target: Path, raw: bytes) -> None:
        """Store ``raw`` compressed at ``target`` unless it is there (temp + rename)."""
        if not target.exists():
            target.parent.parent.mkdir(exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._objects.incoming, delete=False) as temp:
                temp.write(zlib.compress(raw, 1))
            self._objects.publish(Path(temp.name), target)

    def _put_page(self, rows: list[str]) -> str:
        raw = f"[{','.join(rows)}]".encode()
        page = hashlib.sha256(raw).hexdigest()
        if page not in self._stored:
            self._write(self._page_path(page), raw)
            self._stored.add(page)
        return page

    def _page_of(self, rows: list[str], last: tuple[list[str], str] | None) -> str:
        """The page of ``rows``: the last save's page ending at the same path if it held
        the same rows and is still stored (comparing rows it made is nearly free)."""
        if last is not None and last[1] in self._stored and last[0] == rows:
            return last[1]
        return self._put_page(rows)

    def save(self, sprite: str, entries: list[Entry]) -> str:
        """Store sorted ``entries`` (what is not stored yet); return the manifest id."""
        known = self._rows.get(sprite, {})
        known_pages = self._pages.get(sprite, {})
        rows: dict[str, tuple[Entry, str, bool]] = {}
        ended: dict[str, tuple[list[str], str]] = {}
        pages: list[str] = []
        page: list[str] = []
        for entry in entries:  # keyed by path: a str caches its hash, a tuple does not
            row = known.get(entry.path)
            if row is None or (row[0] is not entry and row[0] != entry):
                row = (entry, _ROW(entry), not zlib.crc32(os.fsencode(entry.path)) & _PAGE_MASK)
            rows[entry.path] = row
            page.append(row[1])
            if row[2]:
                pages.append(self._page_of(page, known_pages.get(entry.path)))
                ended[entry.path] = (page, pages[-1])
                page = []
        if page or not pages:
            pages.append(self._put_page(page))
        self._rows[sprite] = rows
        self._pages[sprite] = ended
        raw = json.dumps({"pages": pages}, separators=(",", ":")).encode()
        manifest_id = hashlib.sha256(raw).hexdigest()
        self._write(self.path(manifest_id), raw)
        self._remember(manifest_id, entries)
        return manifest_id

    def load(self, manifest_id: str) -> list[Entry]:
        """A stored manifest's entries; raises OSError or ValueError if missing or damaged."""
        entries = self._decoded.get(manifest_id)
        if entries is not None and self.path(manifest_id).exists():
            self._decoded.move_to_end(manifest_id)
            return list(entries)
        document = self._document(manifest_id)
        if isinstance(document, list):  # written whole, by an older server
            entries = [Entry(*row) for row in document]
        else:
            entries = []
            for page in document["pages"]:
                entries.extend(Entry(*row) for row in json.loads(self._page(page)))
        self._remember(manifest_id, entries)
        return list(entries)

    def pages(self, manifest_id: str) -> list[str]:
        """The objects a manifest's pages are (none for one written whole); raises OSError
        or ValueError if it is missing or damaged."""
        document = self._document(manifest_id)
        return [] if isinstance(document, list) else document["pages"]

    def page_refs(self, page: str) -> frozenset[str]:
        """The refs of the files a page lists; raises OSError or ValueError if it is
        missing or damaged."""
        return frozenset(row[5] for row in json.loads(self._page(page)) if row[1] == "f")

    def remove(self, manifest_id: str, pages: list[str]) -> None:
        """Delete the pages, then the manifest (the collector's order: a manifest left
        by a crash still names what may be left of its pages)."""
        for page in pages:
            self._page_path(page).unlink(missing_ok=True)
            self._stored.discard(page)
        self.path(manifest_id).unlink(missing_ok=True)
        self._decoded.pop(manifest_id, None)

    def _document(self, manifest_id: str) -> list | dict:
        document = json.loads(self._read(self.path(manifest_id), manifest_id, "snapshot"))
        if isinstance(document, dict) and isinstance(document.get("pages"), list):
            return document
        if isinstance(document, list):
            return document
        raise ValueError(f"snapshot {manifest_id[:12]} is damaged")

    def _page(self, page: str) -> bytes:
        return self._read(self._page_path(page), page, "part of a snapshot")

    def _read(self, path: Path, name: str, what: str) -> bytes:
        """What is stored at ``path``, checked against its ``name``; OSError if missing."""
        stored = path.read_bytes()
        try:
            raw = zlib.decompress(stored)
        except zlib.error:
            raw = b""
        if hashlib.sha256(raw).hexdigest() != name:
            raise ValueError(f"{what} {name[:12]} is damaged")
        return raw

    def decoded(self, manifest_id: str) -> list[Entry] | None:
        """The manifest's entries if they are in memory (do not change them), else None."""
        return self._decoded.get(manifest_id)

    def forget(self, sprite: str) -> None:
        self._rows.pop(sprite, None)
        self._pages.pop(sprite, None)

    def _remember(self, manifest_id: str, entries: list[Entry]) -> None:
        self._decoded[manifest_id] = entries
        self._decoded.move_to_end(manifest_id)
        while len(self._decoded) > _KEEP_DECODED:
            self._decoded.popitem(last=False)
