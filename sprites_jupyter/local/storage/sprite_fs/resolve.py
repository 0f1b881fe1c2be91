"""Open a sprite path inside a root directory fd, as a process inside the sprite would.

The kernel does it with ``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)``: the root
fd is ``/`` for the lookup, so ``..`` and absolute symlinks never climb above it. Where
``openat2`` is missing (kernels before 5.6, seccomp filters) the same rules are applied
one component at a time with ``O_NOFOLLOW``, reading each symlink and re-resolving its
target against the root. Either way the result is an ``O_PATH`` fd: opening it never
has side effects (a fifo cannot block, a device is not opened), and callers look at its
type with ``fstat`` before :func:`reopen` gives them an fd they can read or write.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from functools import cache

O_PATH = getattr(os, "O_PATH", 0)
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10
_SYS_OPENAT2 = 437  # the same number on every architecture (added after the unification)
_MAX_SYMLINKS = 40  # the kernel's own limit (ELOOP beyond it)
_EAGAIN_RETRIES = 64


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True)


def _openat2(dirfd: int, rel: bytes, flags: int,
             resolve: int = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, 0, resolve)
    for _ in range(_EAGAIN_RETRIES):
        fd = _libc.syscall(_SYS_OPENAT2, dirfd, rel, ctypes.byref(how), ctypes.sizeof(how))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err not in (errno.EAGAIN, errno.EINTR):
            raise OSError(err, os.strerror(err))
    raise OSError(errno.EAGAIN, "the path kept changing while it was resolved")


@cache
def have_openat2() -> bool:
    """Whether this kernel (and any seccomp filter in force) lets us call ``openat2``."""
    if not O_PATH:
        return False
    try:
        os.close(_openat2(-100, b"/", O_PATH))  # AT_FDCWD
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            return False
        raise
    return True


def open_beneath(dirfd: int, rel: bytes, flags: int) -> int:
    """``rel`` opened beneath ``dirfd`` with ``openat2`` (check :func:`have_openat2`):
    ELOOP if any component is a symlink, EXDEV if it would leave ``dirfd``."""
    return _openat2(dirfd, rel, flags, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)


def relative(spath: str) -> bytes:
    """An absolute sprite path as a path relative to the root fd (``.`` for ``/``)."""
    return os.fsencode(spath.lstrip("/") or ".")


def open_in_root(rootfd: int, spath: str, *, follow: bool = True, directory: bool = False,
                 use_openat2: bool | None = None) -> int:
    """An ``O_PATH`` fd for the absolute sprite path ``spath`` under ``rootfd``.

    Symlinks resolve inside the root; with ``follow=False`` a final symlink is
    opened itself. ``directory=True`` fails with ENOTDIR on anything else.
    """
    flags = O_PATH | (0 if follow else os.O_NOFOLLOW) | (os.O_DIRECTORY if directory else 0)
    if have_openat2() if use_openat2 is None else use_openat2:
        return _openat2(rootfd, relative(spath), flags)
    return _walk(rootfd, spath, follow=follow, directory=directory)


def _walk(rootfd: int, spath: str, *, follow: bool, directory: bool) -> int:
    """:func:`open_in_root` without ``openat2``: one ``O_NOFOLLOW`` step per component."""
    stack = [os.dup(rootfd)]  # the directories from the root to where the walk stands
    todo = [p for p in reversed(spath.split("/")) if p not in ("", ".")]
    links = 0
    try:
        while todo:
            part = todo.pop()
            if part == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            fd = os.open(part, O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode) and (todo or follow):
                target = os.readlink(b"", dir_fd=fd)
                os.close(fd)
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))
                if target.startswith(b"/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                todo.extend(os.fsdecode(p) for p in reversed(target.split(b"/"))
                            if p not in (b"", b"."))
                continue
            stack.append(fd)
            if todo and not stat.S_ISDIR(mode):
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        if directory and not stat.S_ISDIR(os.fstat(stack[-1]).st_mode):
            raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        return stack.pop()
    finally:
        for fd in stack:
            os.close(fd)


# Kernel file systems: reading or changing them acts on the host's kernel with the
# server's privileges (/proc/kallsyms unmasked, sysfs attributes), not the sprite's.
_KERNEL_FS = {0x9FA0: "procfs", 0x62656572: "sysfs", 0x64626720: "debugfs",
              0x74726163: "tracefs", 0x73636673: "securityfs", 0x63677270: "cgroup2",
              0x27E0EB: "cgroup", 0xCAFE4A11: "bpffs", 0x62656570: "configfs",
              0xDE5E81E4: "efivarfs", 0x42494E4D: "binfmt_misc", 0x6E736673: "nsfs"}


def kernel_fs(fd: int) -> str | None:
    """The name of the kernel file system ``fd`` is on (``procfs``…), else ``None``."""
    buf = ctypes.create_string_buffer(256)  # struct statfs; f_type comes first
    if _libc.fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return _KERNEL_FS.get(ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF)


def reopen(pathfd: int, flags: int) -> int:
    """A real fd (``O_RDONLY``, ``O_WRONLY``…) on the inode an ``O_PATH`` fd names.

    Goes through the server's own ``/proc/self/fd``, so the inode is exactly the one
    whose type the caller checked: no name is looked up again.
    """
    return os.open(f"/proc/self/fd/{pathfd}", flags | os.O_CLOEXEC | os.O_NOCTTY)
