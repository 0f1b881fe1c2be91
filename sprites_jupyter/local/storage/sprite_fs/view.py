"""A sprite's filesystem as its own processes see it, reached through one held root fd.

Every path resolves inside the root (:mod:`.resolve`); entries are then acted on by
fd or by ``*at`` calls on one name in a held directory fd, never by a host path that a
sprite process could swap between a check and its use. Reads, listings, deletes,
renames and attribute changes live here; writes and copies in :mod:`.writes`.
"""

from __future__ import annotations

import builtins
import ctypes
import errno
import os
import posixpath
import stat
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from .errors import SpriteFsError, refuse_kernel_fs, refuse_special, sprite_errors
from .ids import read_id_maps
from .mounts import refuse_mount_point
from .resolve import O_PATH, kernel_fs, open_in_root, reopen
from .tree import TreeEntry, plan, replay

_MAX_SYMLINKS = 40
_AT_EMPTY_PATH = 0x1000
_libc = ctypes.CDLL(None, use_errno=True)


def link_target(spath: str, target: str) -> str:
    """Where a symlink at ``spath`` pointing at ``target`` leads, as a sprite path
    (``..`` stops at ``/``, as it does for the sprite's processes)."""
    joined = target if target.startswith("/") else posixpath.join(posixpath.dirname(spath),
                                                                   target)
    parts: list[str] = []
    for part in joined.split("/"):
        if part == "..":
            if parts:
                parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    return "/" + "/".join(parts)


def chown_fd(fd: int, uid: int, gid: int) -> None:
    """``fchownat(fd, "", AT_EMPTY_PATH)``: change the inode an ``O_PATH`` fd names
    (a symlink itself, if it is one); ``-1`` keeps a value."""
    if _libc.fchownat(fd, b"", uid, gid, _AT_EMPTY_PATH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def chmod_fd(fd: int, mode: int) -> None:
    """Change the mode of the (non-symlink) inode an ``O_PATH`` fd names."""
    os.chmod(f"/proc/self/fd/{fd}", mode)


def _refuse_hardlinked(info: os.stat_result, path: str, doing: str) -> None:
    """Changing a hard-linked file changes every name of it, perhaps outside the sprite."""
    if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
        raise SpriteFsError(errno.EPERM, path,
                            f"{path} has {info.st_nlink} hard links: {doing} would change "
                            "every linked name; copy it to a file of its own first")


class SpriteView:
    """Filesystem operations inside one sprite's root (a tree directory, or the
    sandbox's view of it). Entries the server makes are the sprite user's: the server's
    own uid, which the sandbox maps onto it, or, for a root server, the sprite user's
    host id that the calling thread acts as (:func:`.ids.acting_as`)."""

    def __init__(self, root: Path) -> None:
        self.rootfd = os.open(root, O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.rootfd)

    def __enter__(self) -> SpriteView:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # resolution ------------------------------------------------------------

    def open(self, spath: str, *, follow: bool = True, directory: bool = False) -> int:
        """An ``O_PATH`` fd for ``spath``, symlinks resolved inside the sprite."""
        return open_in_root(self.rootfd, spath, follow=follow, directory=directory)

    def parent(self, spath: str) -> tuple[int, str]:
        """The parent directory's ``O_PATH`` fd and the final name (``""`` for ``/``)."""
        return self.open(posixpath.dirname(spath), directory=True), posixpath.basename(spath)

    def ensure_dir(self, spath: str) -> int:
        """The directory ``spath``, made with its missing parents (0755) if need be."""
        try:
            return self.open(spath, directory=True)
        except FileNotFoundError:
            if spath == "/":
                raise
        parent_fd, name = self.parent_made(spath)
        try:
            try:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            except FileExistsError:
                pass
            else:
                made = os.open(name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                               dir_fd=parent_fd)
                try:
                    chmod_fd(made, 0o755)  # whatever the server's umask
                finally:
                    os.close(made)
        finally:
            os.close(parent_fd)
        return self.open(spath, directory=True)

    def parent_made(self, spath: str) -> tuple[int, str]:
        """:meth:`parent`, making missing parent directories first."""
        return self.ensure_dir(posixpath.dirname(spath)), posixpath.basename(spath)

    def final(self, spath: str, *, make_parents: bool = False
              ) -> tuple[int, str, str, os.stat_result | None]:
        """Where a write to ``spath`` lands: a final symlink is followed inside the sprite.

        Returns the parent directory fd, the name in it, that entry's sprite path and
        its ``lstat`` (``None`` when it does not exist yet).
        """
        path = spath
        for _ in range(_MAX_SYMLINKS + 1):
            parent_fd, name = self.parent_made(path) if make_parents else self.parent(path)
            make_parents = False
            try:
                info = os.stat(name or ".", dir_fd=parent_fd, follow_symlinks=False)
                if stat.S_ISLNK(info.st_mode):
                    target = os.fsdecode(os.readlink(name, dir_fd=parent_fd))
            except FileNotFoundError:
                return parent_fd, name, path, None
            except BaseException:
                os.close(parent_fd)
                raise
            if not stat.S_ISLNK(info.st_mode):
                return parent_fd, name, path, info
            os.close(parent_fd)
            path = link_target(path, target)
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))

    # operations -------------------------------------------------------------

    def open_for_read(self, spath: str) -> tuple[int, int]:
        """An ``O_RDONLY`` fd on the regular file ``spath`` and its size."""
        with sprite_errors(spath):
            fd = self.open(spath)
            try:
                info = os.fstat(fd)
                if stat.S_ISDIR(info.st_mode):
                    raise SpriteFsError(errno.EISDIR, spath, "is a directory: use /fs/list")
                refuse_special(info.st_mode, spath, "fs/read")
                refuse_kernel_fs(kernel_fs(fd), spath, "fs/read")
                readable = reopen(fd, os.O_RDONLY)
            finally:
                os.close(fd)
            return readable, os.fstat(readable).st_size

    def list(self, spath: str, *, recursive: bool = False) -> list[TreeEntry]:
        """A directory's entries (all below it with ``recursive``), or the one entry
        ``spath`` names when it is not a directory."""
        with sprite_errors(spath):
            try:
                fd = self.open(spath, directory=True)
            except (FileNotFoundError, NotADirectoryError):
                parent_fd, name = self.parent(spath)
                try:
                    info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
                finally:
                    os.close(parent_fd)
                return [TreeEntry(0, name, spath, info)]
            try:
                return plan(fd, spath, recursive=recursive)
            finally:
                os.close(fd)

    def delete(self, spath: str, *, recursive: bool = False) -> None:
        """Remove ``spath`` itself (a symlink, never its target); directories need
        ``recursive`` unless empty."""
        with sprite_errors(spath):
            parent_fd, name = self.parent(spath)
            try:
                if not name:
                    raise SpriteFsError(errno.EACCES, spath, "refusing to delete the "
                                                             "sprite's root")
                info = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
                refuse_mount_point(parent_fd, name, spath, "fs/delete")
                if stat.S_ISDIR(info.st_mode) and recursive:
                    self._empty_tree(parent_fd, TreeEntry(0, name, spath, info))
                if stat.S_ISDIR(info.st_mode):
                    os.rmdir(name, dir_fd=parent_fd)
                else:
                    os.unlink(name, dir_fd=parent_fd)
            finally:
                os.close(parent_fd)

    @staticmethod
    def _empty_tree(parent_fd: int, top: TreeEntry) -> None:
        fd = os.open(top.name, O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=parent_fd)
        try:
            def unlink(dir_fd: int, entry: TreeEntry) -> None:
                refuse_mount_point(dir_fd, entry.name, entry.path, "fs/delete")
                if not entry.is_dir:
                    os.unlink(entry.name, dir_fd=dir_fd)

            def rmdir(dir_fd: int, entry: TreeEntry) -> None:
                os.rmdir(entry.name, dir_fd=dir_fd)

            replay(fd, plan(fd, top.path), unlink, rmdir)
        finally:
            os.close(fd)

    def rename(self, source: str, dest: str) -> None:
        """Rename ``source`` (itself, if a symlink) to ``dest``, replacing a file there."""
        with sprite_errors(source):
            src_fd, src_name = self.parent(source)
            try:
                with sprite_errors(dest):
                    dst_fd, dst_name = self.parent(dest)
                try:
                    if not src_name or not dst_name:
                        raise SpriteFsError(errno.EACCES, source if not src_name else dest,
                                            "refusing to rename the sprite's root")
                    os.stat(src_name, dir_fd=src_fd, follow_symlinks=False)
                    refuse_mount_point(src_fd, src_name, source, "fs/rename")
                    refuse_mount_point(dst_fd, dst_name, dest, "fs/rename")
                    os.rename(src_name, dst_name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
                finally:
                    os.close(dst_fd)
            finally:
                os.close(src_fd)

    def chmod(self, spath: str, mode: int, *, recursive: bool = False) -> builtins.list[str]:
        """Set ``mode`` on ``spath`` (and, with ``recursive``, everything below it but
        symlinks); the sprite paths changed."""

        def change(fd: int, info: os.stat_result, path: str) -> bool:
            if stat.S_ISLNK(info.st_mode):
                return False
            chmod_fd(fd, mode)
            return True

        return self._change_attrs(spath, recursive, "chmod", change)

    def chown(self, spath: str, uid: int, gid: int, *, recursive: bool = False
              ) -> builtins.list[tuple[str, int, int]]:
        """Set owner ``uid``/``gid`` (sprite ids; ``-1`` keeps one) on ``spath`` (and
        below it); symlinks themselves are changed, never their targets."""
        uids, gids = read_id_maps(self.rootfd)
        host_uid, host_gid = uids.to_host(uid), gids.to_host(gid)
        for kind, wanted, host, ids in (("uid", uid, host_uid, uids), ("gid", gid, host_gid,
                                                                         gids)):
            if host is None:
                raise SpriteFsError(errno.EINVAL, spath,
                                    f"{kind} {wanted} does not exist in this sprite (its user "
                                    f"namespace has {ids.describe()})")
        changed: builtins.list[tuple[str, int, int]] = []

        def change(fd: int, info: os.stat_result, path: str) -> bool:
            chown_fd(fd, host_uid, host_gid)  # type: ignore[arg-type]
            after = os.fstat(fd)
            changed.append((path, uids.to_sprite(after.st_uid), gids.to_sprite(after.st_gid)))
            return True

        self._change_attrs(spath, recursive, "chown", change)
        return changed

    def _change_attrs(self, spath: str, recursive: bool, doing: str,
                      change: Callable[[int, os.stat_result, str], bool]) -> builtins.list[str]:
        """Apply ``change(o_path_fd, info, path)`` to ``spath`` and, with ``recursive``,
        to its tree; hard-linked files anywhere refuse the whole call first."""
        affected: builtins.list[str] = []
        with sprite_errors(spath):
            fd = self.open(spath)
            try:
                info = os.fstat(fd)
                refuse_kernel_fs(kernel_fs(fd), spath, doing)
                _refuse_hardlinked(info, spath, doing)
                entries = plan(fd, spath) if recursive and stat.S_ISDIR(info.st_mode) else []
                for entry in entries:
                    _refuse_hardlinked(entry.info, entry.path, doing)
                if change(fd, info, spath):
                    affected.append(spath)

                def visit(dir_fd: int, entry: TreeEntry) -> None:
                    one = os.open(entry.name, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  dir_fd=dir_fd)
                    try:
                        now = os.fstat(one)
                        if (now.st_dev, now.st_ino) != (entry.info.st_dev, entry.info.st_ino):
                            return  # swapped since the plan: leave it alone
                        if kernel_fs(one) is not None:
                            return  # a /proc or /sys mounted below: not the sprite's files
                        _refuse_hardlinked(now, entry.path, doing)
                        if change(one, now, entry.path):
                            affected.append(entry.path)
                    finally:
                        os.close(one)

                replay(fd, entries, visit)
            finally:
                os.close(fd)
        return affected
