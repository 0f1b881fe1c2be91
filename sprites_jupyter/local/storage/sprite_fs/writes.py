"""Writing and copying files in a sprite without ever writing through an existing name.

A file is written to a new temporary file beside its final name, then renamed over
it: whatever was there (a hard link to a file elsewhere, a symlink swapped in) is
replaced, never opened for writing. A failed write (a full disk, a client gone)
removes the temporary file and leaves the old content in place.
"""

from __future__ import annotations

import errno
import os
import posixpath
import secrets
import stat
from contextlib import suppress
from dataclasses import dataclass, field
from types import TracebackType

from .errors import SpriteFsError, refuse_kernel_fs, refuse_special, sprite_errors
from .mounts import refuse_mount_point
from .resolve import O_PATH, kernel_fs, reopen
from .tree import TreeEntry, plan, replay
from .view import SpriteView, chmod_fd, chown_fd

CHUNK = 1 << 20
_IOV_MAX = os.sysconf("SC_IOV_MAX")
_COPY_FALLBACK = (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)
_DIR_PATH = O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def _temp_name() -> str:
    return f".sprites-write-{secrets.token_hex(8)}"


class PendingWrite:
    """A file being written beside ``name`` in ``dir_fd`` (which it takes over);
    :meth:`commit` renames it into place, leaving the ``with`` block without
    committing removes it."""

    def __init__(self, dir_fd: int, name: str, path: str, mode: int,
                 owner: tuple[int, int] | None) -> None:
        self.path = path
        self.mode = mode
        self.size = 0
        self._dir_fd, self._name, self._owner = dir_fd, name, owner
        self._tmp = _temp_name()
        self._done = False
        try:
            with sprite_errors(path):
                self._fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                                   | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        except BaseException:
            os.close(dir_fd)
            raise

    def __enter__(self) -> PendingWrite:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.abort()

    def write(self, data: bytes) -> None:
        self.write_chunks([data])

    def write_chunks(self, chunks: list[bytes]) -> None:
        """Write ``chunks`` in order with as few system calls as the kernel allows
        (``writev``: the pieces a request body arrives in are never joined first)."""
        with sprite_errors(self.path):
            views = [memoryview(chunk).cast("B") for chunk in chunks if chunk]
            first = 0
            while first < len(views):
                written = os.writev(self._fd, views[first:first + _IOV_MAX])
                self.size += written
                while first < len(views) and written >= len(views[first]):
                    written -= len(views[first])
                    first += 1
                if written:
                    views[first] = views[first][written:]

    def copy_from(self, src_fd: int, length: int) -> None:
        """Copy ``length`` bytes (the size the source had when checked) from ``src_fd``."""
        with sprite_errors(self.path):
            remaining = length
            while remaining > 0:
                try:
                    done = os.copy_file_range(src_fd, self._fd, min(CHUNK, remaining))
                except OSError as exc:
                    if exc.errno not in _COPY_FALLBACK:
                        raise
                    break
                if done == 0:
                    return
                self.size += done
                remaining -= done
            while remaining > 0 and (chunk := os.read(src_fd, min(CHUNK, remaining))):
                self.write(chunk)
                remaining -= len(chunk)

    def commit(self, times_ns: tuple[int, int] | None = None) -> None:
        with sprite_errors(self.path):
            if self._owner is not None:
                with suppress(PermissionError):  # an unprivileged server keeps its own
                    os.fchown(self._fd, *self._owner)
            os.fchmod(self._fd, self.mode)
            if times_ns is not None:
                os.utime(self._fd, ns=times_ns)
            refuse_mount_point(self._dir_fd, self._name, self.path, "a write")
            os.rename(self._tmp, self._name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        self._done = True
        self.abort()

    def abort(self) -> None:
        """Remove the temporary file unless committed; close everything (idempotent)."""
        if self._dir_fd < 0:
            return
        if not self._done:
            with suppress(OSError):
                os.unlink(self._tmp, dir_fd=self._dir_fd)
        os.close(self._fd)
        os.close(self._dir_fd)
        self._dir_fd = -1


def begin_write(view: SpriteView, spath: str, *, mode: int | None, make_parents: bool
                ) -> PendingWrite:
    """Start writing the regular file ``spath`` (a final symlink is followed inside the
    sprite). New files get ``mode`` or 0644; existing ones keep their mode and owner
    unless ``mode`` is given."""
    with sprite_errors(spath):
        dir_fd, name, path, existing = view.final(spath, make_parents=make_parents)
    try:
        _refuse_target(existing, name, path, "fs/write")
        refuse_mount_point(dir_fd, name, path, "fs/write")
    except BaseException:
        os.close(dir_fd)
        raise
    if existing is None:
        return PendingWrite(dir_fd, name, path, 0o644 if mode is None else mode, None)
    return PendingWrite(dir_fd, name, path,
                        stat.S_IMODE(existing.st_mode) if mode is None else mode,
                        (existing.st_uid, existing.st_gid))


def _refuse_target(existing: os.stat_result | None, name: str, path: str, doing: str) -> None:
    if not name or (existing is not None and stat.S_ISDIR(existing.st_mode)):
        raise SpriteFsError(errno.EISDIR, path, "is a directory: choose a file path")
    if existing is not None:
        refuse_special(existing.st_mode, path, doing)


@dataclass
class CopyResult:
    """The files copied, as ``(source, dest)`` sprite paths, and their bytes."""

    copied: list[tuple[str, str]] = field(default_factory=list)
    total_bytes: int = 0


def copy(view: SpriteView, source: str, dest: str, *, recursive: bool, preserve: bool
         ) -> CopyResult:
    """Copy the file or (with ``recursive``) directory ``source`` to ``dest``.

    A file copied onto a directory lands inside it; a directory merges into an existing
    one. Symlinks inside a tree are copied as symlinks; fifos, sockets and devices are
    refused, never read. ``preserve`` keeps times and, where allowed, owners.
    """
    with sprite_errors(source):
        src_fd = view.open(source)
    try:
        info = os.fstat(src_fd)
        refuse_special(info.st_mode, source, "fs/copy")
        refuse_kernel_fs(kernel_fs(src_fd), source, "fs/copy")
        if not stat.S_ISDIR(info.st_mode):
            return _copy_file(view, src_fd, info, source, dest, preserve)
        if not recursive:
            raise SpriteFsError(errno.EISDIR, source, "is a directory: pass recursive=true")
        return _TreeCopy(view, source, src_fd, info, preserve).run(dest)
    finally:
        os.close(src_fd)


def _owner_for(info: os.stat_result, existing: os.stat_result | None,
               preserve: bool) -> tuple[int, int] | None:
    if preserve:
        return info.st_uid, info.st_gid
    if existing is not None:
        return existing.st_uid, existing.st_gid
    return None


def _copy_data(pending: PendingWrite, src_pathfd: int, info: os.stat_result,
               preserve: bool) -> None:
    with pending:
        readable = reopen(src_pathfd, os.O_RDONLY)
        try:
            pending.copy_from(readable, info.st_size)
            pending.commit((info.st_atime_ns, info.st_mtime_ns) if preserve else None)
        finally:
            os.close(readable)


def _copy_file(view: SpriteView, src_fd: int, info: os.stat_result, source: str, dest: str,
               preserve: bool) -> CopyResult:
    with sprite_errors(dest):
        dir_fd, name, path, existing = view.final(dest)
        if existing is not None and stat.S_ISDIR(existing.st_mode):
            os.close(dir_fd)
            dir_fd, name, path, existing = view.final(
                posixpath.join(path, posixpath.basename(source)))
        try:
            _refuse_target(existing, name, path, "fs/copy")
            if existing is not None and (existing.st_dev, existing.st_ino) == (
                    info.st_dev, info.st_ino):
                raise SpriteFsError(errno.EINVAL, path, "source and destination are the same "
                                                        "file")
        except BaseException:
            os.close(dir_fd)
            raise
        pending = PendingWrite(dir_fd, name, path, stat.S_IMODE(info.st_mode),
                               _owner_for(info, existing, preserve))
        _copy_data(pending, src_fd, info, preserve)
    return CopyResult([(source, path)], pending.size)


class _TreeCopy:
    """One recursive copy: a plan of the source, replayed into the destination."""

    def __init__(self, view: SpriteView, source: str, src_fd: int, info: os.stat_result,
                 preserve: bool) -> None:
        self.view, self.source, self.src_fd, self.info = view, source, src_fd, info
        self.preserve = preserve
        self.result = CopyResult()
        self.dest = ""
        self.dirs: list[int] = []  # destination directory fds, by depth

    def run(self, dest: str) -> CopyResult:
        with sprite_errors(dest):
            dir_fd, name, path, existing = self.view.final(dest)
        try:
            with sprite_errors(path):
                if existing is not None and not stat.S_ISDIR(existing.st_mode):
                    raise SpriteFsError(errno.EEXIST, path, "cannot copy a directory over a "
                                                            "file: delete it or choose another "
                                                            "dest")
                self._refuse_into_itself(dir_fd, name if existing is not None else None, path)
            self.dest = path
            with sprite_errors(self.source):
                entries = plan(self.src_fd, self.source)
            for entry in entries:
                refuse_special(entry.info.st_mode, entry.path, "fs/copy")
            with sprite_errors(path):
                top = self._make_dir(dir_fd, name or ".")
        finally:
            os.close(dir_fd)
        self.dirs.append(top)
        try:
            replay(self.src_fd, entries, self._visit, self._leave)
            with sprite_errors(self.dest):
                self._finish_dir(top, self.info)
        finally:
            for fd in self.dirs:
                os.close(fd)
        return self.result

    def _refuse_into_itself(self, dir_fd: int, name: str | None, path: str) -> None:
        """Refuse a destination that is the source or lies inside it (by inode, walking
        up from the destination to the sprite's root)."""
        source_id = (self.info.st_dev, self.info.st_ino)
        root = os.fstat(self.view.rootfd)
        fd = os.open(name or ".", _DIR_PATH, dir_fd=dir_fd) if name is not None else os.dup(
            dir_fd)
        try:
            while True:
                here = os.fstat(fd)
                if (here.st_dev, here.st_ino) == source_id:
                    raise SpriteFsError(errno.EINVAL, path,
                                        f"cannot copy {self.source} into itself: {path} is "
                                        "inside it; choose a destination outside it")
                if (here.st_dev, here.st_ino) == (root.st_dev, root.st_ino):
                    return
                up = os.open("..", _DIR_PATH, dir_fd=fd)
                os.close(fd)
                fd = up
                if os.path.samestat(os.fstat(fd), here):
                    return
        finally:
            os.close(fd)

    def _dest_path(self, entry: TreeEntry) -> str:
        return posixpath.join(self.dest, posixpath.relpath(entry.path, self.source))

    def _visit(self, src_dir: int, entry: TreeEntry) -> None:
        while len(self.dirs) > entry.depth:
            os.close(self.dirs.pop())
        parent = self.dirs[-1]
        path = self._dest_path(entry)
        with sprite_errors(path):
            kind = stat.S_IFMT(entry.info.st_mode)
            if kind == stat.S_IFDIR:
                self.dirs.append(self._make_dir(parent, entry.name))
            elif kind == stat.S_IFLNK:
                self._copy_symlink(src_dir, parent, entry.name)
            else:
                self._copy_regular(src_dir, parent, entry, path)

    def _leave(self, src_dir: int, entry: TreeEntry) -> None:
        with sprite_errors(self._dest_path(entry)):
            self._finish_dir(self.dirs[entry.depth], entry.info)

    def _finish_dir(self, fd: int, info: os.stat_result) -> None:
        chmod_fd(fd, stat.S_IMODE(info.st_mode))
        if self.preserve:
            with suppress(PermissionError):
                chown_fd(fd, info.st_uid, info.st_gid)

    @staticmethod
    def _make_dir(parent: int, name: str) -> int:
        with suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
        return os.open(name, _DIR_PATH, dir_fd=parent)

    @staticmethod
    def _copy_symlink(src_dir: int, parent: int, name: str) -> None:
        target = os.readlink(name, dir_fd=src_dir)
        tmp = _temp_name()
        os.symlink(target, tmp, dir_fd=parent)
        try:
            refuse_mount_point(parent, name, name, "fs/copy")
            os.rename(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            os.unlink(tmp, dir_fd=parent)
            raise

    def _copy_regular(self, src_dir: int, parent: int, entry: TreeEntry, path: str) -> None:
        one = os.open(entry.name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_dir)
        try:
            now = os.fstat(one)
            if not stat.S_ISREG(now.st_mode):
                refuse_special(now.st_mode, entry.path, "fs/copy")
                return  # became a directory or symlink since the plan: not copied
            try:
                existing = os.stat(entry.name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            _refuse_target(existing, entry.name, path, "fs/copy")
            pending = PendingWrite(os.dup(parent), entry.name, path, stat.S_IMODE(now.st_mode),
                                   _owner_for(now, existing, self.preserve))
            _copy_data(pending, one, now, self.preserve)
        finally:
            os.close(one)
        self.result.copied.append((entry.path, path))
        self.result.total_bytes += pending.size
