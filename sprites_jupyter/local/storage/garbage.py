"""Deleting the snapshot data no checkpoint uses any more.

A deletion releases its checkpoints' manifests in the same transaction (the store's
``released`` rows), so the usual collection looks only at what those manifests held: the
pages no manifest in use shares, then the objects of those pages that no page in use
lists, then the chunks of those objects no chunked file in use holds. Pages, manifests
and chunk lists are immutable, so what each holds is read once per server run and kept;
a collection after a per-cell checkpoint's prune costs a query and a few set lookups,
not a scan of every stored object.

A full collection (every manifest in use read, every stored file looked at) runs when
something may have been stored that no release names: a snapshot or its record failed, or
a crash left objects behind (:meth:`Collector.mark`).

Deletion goes objects, then pages, then the manifest, then the release rows: a crash at
any point leaves a release whose manifest still names what is left, and collecting it
again finishes the job. Call :meth:`Collector.collect` only while no snapshot stores data
that no checkpoint records yet (the server's ``StorageWork`` sees to it).
"""

from __future__ import annotations

import os
from pathlib import Path

from .manifests import ManifestStore
from .objects import MissingData, ObjectStore, head, is_chunked
from .store import Store

_FULL_DUE = "gc-due"  # in HOME/objects: something unnamed may be garbage


class _Unknown(Exception):
    """What a manifest in use needs cannot be read: delete nothing."""


class Collector:
    """The collector of one server home's objects and manifests."""

    def __init__(self, objects: ObjectStore, manifests: ManifestStore, root: Path) -> None:
        self.objects = objects
        self.manifests = manifests
        self.manifests_root = root
        self._marker = objects.root / _FULL_DUE
        self._parts: dict[str, list[str]] = {}  # manifest -> its pages (or itself, if whole)
        self._whole: set[str] = set()  # manifests written whole (by an older server)
        self._refs: dict[str, frozenset[str]] = {}  # page -> refs of its files
        self._chunked: dict[str, tuple[str, ...]] = {}  # page -> its chunked files' refs
        self._pieces: dict[str, frozenset[str]] = {}  # chunked ref -> its pieces

    def mark(self) -> None:
        """Stored data may be unreferenced without a release naming it: the next
        collection looks at everything."""
        self._marker.touch()

    def collect(self, store: Store) -> None:
        """Delete what the released manifests alone used (everything unused, if marked)."""
        up_to, released = store.released()  # read before what is in use: see forget_released
        try:
            if self._marker.exists():
                self._collect_all(store)
                self._marker.unlink()
            elif released:
                self._collect_released(store, released)
        except _Unknown:
            return
        if released:
            store.forget_released(up_to)

    # released manifests --------------------------------------------------------------

    def _collect_released(self, store: Store, released: set[str]) -> None:
        in_use = store.manifests_in_use()
        gone = released - in_use
        if not gone:
            return
        used_parts: set[str] = set()
        for manifest in in_use:
            used_parts.update(self._known_parts(manifest))
        freed: dict[str, list[str]] = {}  # gone manifest -> its pages no manifest in use has
        for manifest in gone:
            try:
                parts = self._parts_of(manifest)
            except (OSError, ValueError):
                freed[manifest] = []  # collected before, or damaged: nothing to follow
                continue
            freed[manifest] = [part for part in parts if part not in used_parts]
        candidates: set[str] = set()
        for parts in freed.values():
            for part in parts:
                try:
                    candidates.update(self._refs_of(part))
                except (OSError, ValueError):
                    continue  # its objects went before it did
        names = self._unused_objects(candidates, used_parts)
        self.objects.remove(names)
        for ref in candidates:  # what is left of them: the refs no page in use lists
            self._pieces.pop(ref, None)
        for manifest, parts in freed.items():
            self.manifests.remove(manifest, [p for p in parts if p not in self._whole])
            self._forget(manifest, parts)
        self.objects.prune_assembled()

    def _unused_objects(self, refs: set[str], used_parts: set[str]) -> set[str]:
        """The objects that ``refs`` use and no page in use needs (set lookups per page:
        what is released is small, what is in use may be large)."""
        for part in used_parts:
            if refs and not refs.isdisjoint(self._known_refs(part)):
                refs -= self._known_refs(part)
        names = {head(ref) for ref in refs}
        for ref in refs:
            if is_chunked(ref):
                try:
                    names.update(self._pieces_of(ref))
                except MissingData:
                    continue
        for part in used_parts:  # a piece may be another file's whole object, and back
            if not names:
                break
            if not names.isdisjoint(self._known_refs(part)):
                names -= self._known_refs(part)
            for ref in self._chunked_in(part):
                names.discard(head(ref))
                if not names.isdisjoint(self._known_pieces(ref)):
                    names -= self._known_pieces(ref)
        return names

    def _chunked_in(self, part: str) -> tuple[str, ...]:
        chunked = self._chunked.get(part)
        if chunked is None:
            refs = self._known_refs(part)
            chunked = self._chunked[part] = tuple(r for r in refs if is_chunked(r))
        return chunked

    def _known_parts(self, manifest: str) -> list[str]:
        try:
            return self._parts_of(manifest)
        except (OSError, ValueError) as exc:
            raise _Unknown(manifest) from exc

    def _known_refs(self, part: str) -> frozenset[str]:
        try:
            return self._refs_of(part)
        except (OSError, ValueError) as exc:
            raise _Unknown(part) from exc

    def _known_pieces(self, ref: str) -> frozenset[str]:
        try:
            return self._pieces_of(ref)
        except MissingData as exc:
            raise _Unknown(ref) from exc

    def _parts_of(self, manifest: str) -> list[str]:
        parts = self._parts.get(manifest)
        if parts is None:
            parts = self.manifests.pages(manifest)
            if not parts:
                parts = [manifest]
                self._whole.add(manifest)
            self._parts[manifest] = parts
        return parts

    def _refs_of(self, part: str) -> frozenset[str]:
        refs = self._refs.get(part)
        if refs is None:
            if part in self._whole:
                refs = frozenset(e.ref for e in self.manifests.load(part) if e.kind == "f")
            else:
                refs = self.manifests.page_refs(part)
            self._refs[part] = refs
        return refs

    def _pieces_of(self, ref: str) -> frozenset[str]:
        pieces = self._pieces.get(ref)
        if pieces is None:
            pieces = self._pieces[ref] = frozenset(self.objects.pieces(ref))
        return pieces

    def _forget(self, manifest: str, pages: list[str]) -> None:
        self._parts.pop(manifest, None)
        self._whole.discard(manifest)
        for page in pages:
            self._refs.pop(page, None)
            self._chunked.pop(page, None)

    # everything ---------------------------------------------------------------------

    def _collect_all(self, store: Store) -> None:
        """Delete the manifests no checkpoint uses and the objects none of those needs."""
        in_use = store.manifests_in_use()
        refs: set[str] = set()
        pages: set[str] = set()
        for manifest in in_use:
            for part in self._known_parts(manifest):
                refs.update(self._known_refs(part))
                if part not in self._whole:
                    pages.add(part)
        try:
            needed = self.objects.needed(refs)
        except MissingData as exc:
            raise _Unknown() from exc
        for directory, keep in ((self.manifests_root, in_use),
                                (self.manifests.pages_directory, pages),
                                (self.objects.root, needed)):
            if not directory.is_dir():
                continue
            for fanout in os.scandir(directory):
                if len(fanout.name) != 2 or not fanout.is_dir(follow_symlinks=False):
                    continue  # incoming/ and the marker
                for stored in os.scandir(fanout.path):
                    if fanout.name + stored.name not in keep:
                        os.unlink(stored.path)
        self.objects.keep_presence(needed)
        self.manifests.keep_presence(pages)
        self._parts = {m: p for m, p in self._parts.items() if m in in_use}
        self._whole &= in_use
        self._refs = {part: r for part, r in self._refs.items() if part in pages or part in in_use}
        self._chunked = {part: c for part, c in self._chunked.items() if part in self._refs}
        self._pieces = {ref: p for ref, p in self._pieces.items() if ref in refs}
        self.objects.prune_assembled()
