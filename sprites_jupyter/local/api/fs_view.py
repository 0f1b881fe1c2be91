"""Where the filesystem endpoints and the control connection's fs ops meet a sprite's
files: its view (reached as the sprite user, off the event loop), the reference's
filesystem errors for an errno, and the JSON shape of entries and modes."""

from __future__ import annotations

import asyncio
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import HTTPConnection

from ..state import state_of
from ..storage.sprite_fs import SpriteFsError, SpriteView, TreeEntry, acting_as
from ..wire import rfc3339
from .errors import ApiError

T = TypeVar("T")

_ERRNO_STATUS = {
    errno.ENOENT: (404, "ENOENT"),
    errno.EEXIST: (409, "EEXIST"),
    errno.ENOTEMPTY: (409, "ENOTEMPTY"),
    errno.EBUSY: (409, "EBUSY"),
    errno.EAGAIN: (409, "EAGAIN"),
    errno.ENOTDIR: (400, "ENOTDIR"),
    errno.EISDIR: (400, "EISDIR"),
    errno.EINVAL: (400, "EINVAL"),
    errno.ELOOP: (400, "EINVAL"),
    errno.ENAMETOOLONG: (400, "EINVAL"),
    errno.EXDEV: (400, "EINVAL"),
    errno.EACCES: (403, "EACCES"),
    errno.EPERM: (403, "EACCES"),
    errno.EROFS: (403, "EACCES"),
    errno.EOVERFLOW: (400, "EINVAL"),  # ids or sizes the sprite made that do not fit
    errno.EOPNOTSUPP: (400, "EINVAL"),
    errno.ENXIO: (400, "EINVAL"),
    errno.ENODEV: (400, "EINVAL"),
    errno.EMLINK: (409, "EMLINK"),
    errno.ETXTBSY: (409, "EBUSY"),
    errno.ENOSPC: (507, "ENOSPC"),
    errno.EDQUOT: (507, "ENOSPC"),
}
_MAX_ID = 2**32 - 2  # (uid_t)-1 means "unchanged" to the kernel


def fs_error(err: int, path: str, message: str | None = None) -> ApiError:
    """An ApiError for an errno, with the reference's status and code."""
    status, code = _ERRNO_STATUS.get(err, (500, "EIO"))
    return ApiError(status, message or os.strerror(err).lower(), fs_code=code, path=path)


@dataclass(frozen=True)
class Target:
    """A sprite's view and the host id its fs operations act as (None: the server's)."""

    root: Path
    host_id: int | None


async def view_root(request: HTTPConnection) -> Target:
    """The one place the filesystem API learns where a sprite's files are: the runtime's
    view of them (the sandbox's root, or the tree directory unsandboxed), once any
    restore of the sprite has finished, and whose rights to use there."""
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    runtime = server.runtime(name)
    await runtime.settled()
    server.store.touch_running(name)
    return Target(await runtime.view_root(), runtime.sandbox.host_id)


def disk_room(conn: HTTPConnection, spath: str) -> Callable[..., None]:
    """A check that ``n`` more bytes written at ``spath`` fit in the sprite's disk limit
    (a root server's sprites have one: :mod:`..runtime.sandbox.disks`), raising the error
    that names the sprite, its usage and its limit; ``failed=True``: a write already
    ran out of space, say why if the limit is the cause."""
    server = state_of(conn)
    name = conn.path_params["name"]
    disks, sprite_dir = server.disks, server.sprite_dir(name)

    def require(incoming: int, *, failed: bool = False) -> None:
        if disks is not None:
            disks.require_room(name, sprite_dir, incoming, spath, failed=failed)

    return require


def _sync(error: SpriteFsError) -> ApiError:
    return fs_error(error.errno, error.path, error.message)


async def in_view(target: Target, op: Callable[[SpriteView], T]) -> T:
    """Run ``op`` on the sprite's view in a worker thread, with the sprite user's rights."""
    def run() -> T:
        with acting_as(target.host_id):
            try:
                view = SpriteView(target.root)
            except OSError as exc:
                raise SpriteFsError(exc.errno or errno.EIO, "/") from None
            with view:
                return op(view)

    try:
        return await asyncio.to_thread(run)
    except SpriteFsError as exc:
        raise _sync(exc) from None


async def off_loop(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except SpriteFsError as exc:
        raise _sync(exc) from None


def octal_mode(bits: int) -> str:
    return f"{stat.S_IMODE(bits):04o}"


def parse_mode(value: object, path: str) -> int:
    try:
        if isinstance(value, str):
            mode = int(value, 8)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            mode = int(value)
        else:
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        raise fs_error(errno.EINVAL, path, f"invalid mode {value!r}: use an octal string "
                                           "such as 0644") from None
    if not 0 <= mode <= 0o7777:
        raise fs_error(errno.EINVAL, path, f"invalid mode {value!r}: must be 0000-7777")
    return mode


def owner_id(params: dict[str, Any], name: str, path: str) -> int:
    value = params.get(name)
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        raise fs_error(errno.EINVAL, path, f"invalid {name} {value!r}: use an integer from 0 "
                                           f"to {_MAX_ID}, or null to keep it")
    return value


def json_name(name: str) -> str:
    """A file name as JSON can carry it (undecodable bytes become U+FFFD)."""
    return os.fsencode(name).decode("utf-8", "replace")


def entry_json(entry: TreeEntry) -> dict[str, Any]:
    info = entry.info
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    else:
        kind = "file"
    return {
        "name": json_name(entry.name),
        "path": json_name(entry.path),
        "type": kind,
        "size": info.st_size,
        "mode": octal_mode(info.st_mode),
        "modTime": rfc3339(info.st_mtime),
        "isDir": kind == "directory",
    }
