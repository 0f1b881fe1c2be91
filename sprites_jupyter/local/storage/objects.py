"""The content-addressed object store behind snapshots: whole files, and large files in chunks.

An object is immutable and named by the SHA-256 of its bytes, under ``objects/ab/cdef...``;
it is written aside in ``objects/incoming`` and renamed into place, so a name never holds
partial data. A file of up to :data:`CHUNKED_OVER` bytes is one object, and its manifest
ref is that object's name. A larger file is cut into fixed :data:`CHUNK`-byte pieces,
each an object, listed in order by a chunk list (the pieces' 32-byte digests, itself an
object); its ref is :data:`CHUNKED` + the list's name. An edit in place then stores only
the pieces it touched, plus the list (32 bytes per piece). Fixed pieces, not
content-defined ones: in-place rewrites (databases, disk images, archives patched in
place) keep their boundaries, and a rolling hash per byte in Python would cost far more
than the SHA-256 it saves; an insertion near the start re-stores the rest of the file.
Pieces are read with ``pread`` and hashed by a few threads (``hashlib`` releases the GIL),
so a large file's snapshot is bounded by one read and hash of its bytes.

A checkpoint view shows files whole: a chunked file is assembled once per version into
``assembled/`` and hard linked into every view that shows it (:meth:`ObjectStore.link_assembled`);
an assembled copy no view links any more is deleted (:meth:`ObjectStore.prune_assembled`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

CHUNK = 512 * 1024
CHUNKED_OVER = 16 * 1024 * 1024
CHUNKED = "c:"  # a ref naming a chunk list rather than the file's bytes
_DIGEST = 32
_COPY = 1 << 20
_COPY_RANGE = 64 << 20
_WORKERS = 2
_ASSEMBLING = ".assembling-"
_STALE_ASSEMBLY = 3600.0  # seconds without a write


def is_chunked(ref: str) -> bool:
    return ref.startswith(CHUNKED)


def head(ref: str) -> str:
    """The object a ref names directly: the file's bytes, or its chunk list."""
    return ref[len(CHUNKED):] if is_chunked(ref) else ref


class MissingData(OSError):
    """An object a ref needs is missing from the store (or its chunk list is damaged)."""


class ObjectStore:
    """Objects under ``home/objects``; whole copies of chunked files under ``home/assembled``."""

    def __init__(self, home: Path) -> None:
        self.root = home / "objects"
        self.incoming = self.root / "incoming"
        self.assembly = home / "assembled"
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.present: set[str] = set()  # names and refs known to be stored (this run)

    def path(self, digest: str) -> Path:
        """Where the object ``digest`` is stored (immutable once there)."""
        return self.root / digest[:2] / digest[2:]

    def has(self, digest: str) -> bool:
        """Whether an object exists; looked up on disk once per server run."""
        if digest not in self.present and self.path(digest).exists():
            self.present.add(digest)
        return digest in self.present

    def has_ref(self, ref: str) -> bool:
        """Whether the object a ref names directly exists (for a chunked file: its list;
        the pieces are stored before the list is)."""
        if ref in self.present:
            return True
        if self.has(head(ref)):
            self.present.add(ref)
            return True
        return False

    def keep_presence(self, kept: set[str]) -> None:
        """After a collection deleted every object not in ``kept``: what else was known
        to be stored is not any more (what was kept stays known, so the next snapshot
        does not look up every unchanged file's object on disk again)."""
        self.present = {name for name in self.present if head(name) in kept}

    def remove(self, names: Iterable[str]) -> None:
        """Delete objects nothing uses any more (already gone is fine)."""
        for name in names:
            self.path(name).unlink(missing_ok=True)
            self.present.discard(name)
            self.present.discard(CHUNKED + name)

    def publish(self, temp: Path, target: Path) -> None:
        """Move a finished temporary file to its content-addressed name (or drop it)."""
        if target.exists():
            temp.unlink()
        else:
            target.parent.mkdir(exist_ok=True)
            os.replace(temp, target)

    def put(self, data: bytes) -> str:
        """Store ``data`` as one object; return its name."""
        name = hashlib.sha256(data).hexdigest()
        if not self.has(name):
            with tempfile.NamedTemporaryFile(dir=self.incoming, delete=False) as temp:
                temp.write(data)
            self.publish(Path(temp.name), self.path(name))
            self.present.add(name)
        return name

    # storing a file ----------------------------------------------------------------

    def store_stream(self, reader: BinaryIO) -> tuple[str, int]:
        """Copy an open file into one object while hashing it; (ref, bytes read)."""
        digest = hashlib.sha256()
        size = 0
        with tempfile.NamedTemporaryFile(dir=self.incoming, delete=False) as temp:
            while chunk := reader.read(_COPY):
                digest.update(chunk)
                temp.write(chunk)
                size += len(chunk)
        name = digest.hexdigest()
        self.publish(Path(temp.name), self.path(name))
        self.present.add(name)
        return name, size

    def store_chunked(self, fd: int, size: int) -> tuple[str, int]:
        """Store the first ``size`` bytes of ``fd`` as chunks and a chunk list; (ref, bytes
        read). Only pieces not already stored are written."""
        with ThreadPoolExecutor(_WORKERS) as pool:
            pieces = [piece for piece in pool.map(lambda at: self._store_piece(fd, at),
                                                  range(0, size, CHUNK)) if piece[1]]
        listing = b"".join(digest for digest, _ in pieces)
        ref = CHUNKED + self.put(listing)
        self.present.add(ref)
        return ref, sum(length for _, length in pieces)

    def _store_piece(self, fd: int, offset: int) -> tuple[bytes, int]:
        data = os.pread(fd, CHUNK, offset)
        digest = hashlib.sha256(data).digest()
        if data:
            name = digest.hex()
            if not self.has(name):
                with tempfile.NamedTemporaryFile(dir=self.incoming, delete=False) as temp:
                    temp.write(data)
                self.publish(Path(temp.name), self.path(name))
                self.present.add(name)
        return digest, len(data)

    # reading a file back -------------------------------------------------------------

    def pieces(self, ref: str) -> list[str]:
        """The objects holding a ref's bytes, in order."""
        if not is_chunked(ref):
            return [ref]
        try:
            listing = self.path(head(ref)).read_bytes()
        except FileNotFoundError as exc:
            raise MissingData(ref) from exc
        if len(listing) % _DIGEST:
            raise MissingData(ref)
        return [listing[at:at + _DIGEST].hex() for at in range(0, len(listing), _DIGEST)]

    def needed(self, refs: Iterable[str]) -> set[str]:
        """Every object the refs use (chunk lists and their pieces included)."""
        result: set[str] = set()
        for ref in set(refs):
            result.add(head(ref))
            if is_chunked(ref):
                result.update(self.pieces(ref))
        return result

    def write_file(self, ref: str, dest: str) -> None:
        """Create ``dest`` holding a ref's bytes (a new file, never a link to an object).

        Copied by the kernel (``copy_file_range``), which shares the blocks instead where
        the filesystem can (btrfs, XFS with reflinks); ext4 copies them.
        """
        pieces = self.pieces(ref)
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            for name in pieces:
                try:
                    source = os.open(self.path(name), os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError as exc:
                    raise MissingData(ref) from exc
                try:
                    _copy(source, out)
                finally:
                    os.close(source)
        finally:
            os.close(out)

    def assembly_path(self, ref: str) -> Path:
        """Where the whole copy of a chunked file is kept while a view shows it."""
        return self.assembly / head(ref)

    def link_assembled(self, ref: str, dest: Path) -> None:
        """Hard link at ``dest`` a whole, read-only copy of a chunked file, made once and
        shared by every view. A new copy is linked at ``dest`` before it is published
        under ``assembled/``, so :meth:`prune_assembled` never takes it for unused."""
        with contextlib.suppress(FileNotFoundError):
            os.link(self.assembly_path(ref), dest)
            return
        self.assembly.mkdir(exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=self.assembly, prefix=_ASSEMBLING)
        os.close(handle)
        try:
            os.unlink(temp)
            self.write_file(ref, temp)
            os.chmod(temp, 0o444)
            os.link(temp, dest)
            os.replace(temp, self.assembly_path(ref))
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def prune_assembled(self) -> None:
        """Delete the assembled copies no view links any more."""
        if not self.assembly.is_dir():
            return
        for entry in os.scandir(self.assembly):
            with contextlib.suppress(FileNotFoundError):
                if entry.name.startswith(_ASSEMBLING):  # being written, or left by a crash
                    if entry.stat().st_mtime < time.time() - _STALE_ASSEMBLY:
                        os.unlink(entry.path)
                    continue
                if entry.stat(follow_symlinks=False).st_nlink <= 1:
                    os.unlink(entry.path)


def _copy(source: int, out: int) -> None:
    """Append the rest of ``source`` to ``out``, in the kernel where it can."""
    try:
        while os.copy_file_range(source, out, _COPY_RANGE):
            pass
        return
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
            raise
    while chunk := os.read(source, _COPY):
        while chunk:
            chunk = chunk[os.write(out, chunk):]
