"""Filesystem endpoints (reference section 6).

Paths are sprite paths resolved against ``workingDir`` (default ``/``). The work is
done off the event loop by :mod:`..storage.sprite_fs`, inside the sprite's own view
(:func:`_view_root`), so a symlink resolves as it would for the sprite's processes and
nothing outside the sprite is reached. Failures use the reference's filesystem error
shape: ``{"error", "code", "path"}``, naming sprite paths only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..errors import LocalError
from ..state import state_of
from ..storage.paths import sprite_path
from ..storage.sprite_fs import (
    PendingWrite,
    SpriteFsError,
    SpriteView,
    TreeEntry,
    acting_as,
    begin_write,
    copy,
)
from ..wire import query_bool, read_json_object, rfc3339
from .errors import ApiError

T = TypeVar("T")
READ_CHUNK = 1 << 20  # what one send hands the socket
WRITE_BATCH = 4 << 20  # what one writev hands the disk

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
class _Target:
    """A sprite's view and the host id its fs operations act as (None: the server's)."""

    root: Path
    host_id: int | None


async def _view_root(request: HTTPConnection) -> _Target:
    """The one place the filesystem API learns where a sprite's files are: the runtime's
    view of them (the sandbox's root, or the tree directory unsandboxed), once any
    restore of the sprite has finished, and whose rights to use there."""
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    runtime = server.runtime(name)
    await runtime.settled()
    server.store.touch_running(name)
    return _Target(await runtime.view_root(), runtime.sandbox.host_id)


def _sync(error: SpriteFsError) -> ApiError:
    return fs_error(error.errno, error.path, error.message)


async def _in_view(target: _Target, op: Callable[[SpriteView], T]) -> T:
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


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    try:
        return await asyncio.to_thread(fn, *args)
    except SpriteFsError as exc:
        raise _sync(exc) from None


def _mode(bits: int) -> str:
    return f"{stat.S_IMODE(bits):04o}"


def _parse_mode(value: object, path: str) -> int:
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


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean from a JSON body (``true``) or a query string (``"true"``)."""
    value = params.get(name)
    if value is None or isinstance(value, bool):
        return default if value is None else value
    if isinstance(value, str):
        return query_bool(value, default)
    raise ApiError(400, f"{name} must be true or false, not {value!r}")


def _owner_id(params: dict[str, Any], name: str, path: str) -> int:
    value = params.get(name)
    if value is None:
        return -1
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_ID:
        raise fs_error(errno.EINVAL, path, f"invalid {name} {value!r}: use an integer from 0 "
                                           f"to {_MAX_ID}, or null to keep it")
    return value


def _text(name: str) -> str:
    """A file name as JSON can carry it (undecodable bytes become U+FFFD)."""
    return os.fsencode(name).decode("utf-8", "replace")


def _entry(entry: TreeEntry) -> dict[str, Any]:
    info = entry.info
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    else:
        kind = "file"
    return {
        "name": _text(entry.name),
        "path": _text(entry.path),
        "type": kind,
        "size": info.st_size,
        "mode": _mode(info.st_mode),
        "modTime": rfc3339(info.st_mtime),
        "isDir": kind == "directory",
    }


async def _params(request: Request) -> dict[str, Any]:
    """Query parameters, with a JSON body as a fallback (dev-latest docs send one)."""
    params: dict[str, Any] = dict(request.query_params)
    if not params.get("path") and request.headers.get("content-type", "").startswith(
            "application/json"):
        params.update(await read_json_object(request, allow_empty=True))
    return params


class _FileStream(Response):
    """The bytes of an open file, read off the event loop one chunk ahead of the one
    being sent (the disk and the socket work at once); closes the fd when done."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__(media_type="application/octet-stream",
                         headers={"content-length": str(size)})
        self.fd, self.size = fd, size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reading: asyncio.Future[bytes] | None = None
        try:
            await send({"type": "http.response.start", "status": self.status_code,
                        "headers": self.raw_headers})
            remaining = self.size
            reading = self._read(remaining)
            while remaining > 0:
                chunk = await reading
                reading = None
                if not chunk:
                    break  # the file shrank while it was sent
                remaining -= len(chunk)
                if remaining > 0:
                    reading = self._read(remaining)
                await send({"type": "http.response.body", "body": chunk,
                            "more_body": remaining > 0})
            if remaining or not self.size:
                await send({"type": "http.response.body", "body": b""})
        finally:
            if reading is not None:
                with contextlib.suppress(Exception):
                    await reading  # never close the fd under a read in a thread
            os.close(self.fd)

    def _read(self, remaining: int) -> asyncio.Future[bytes]:
        return asyncio.ensure_future(asyncio.to_thread(os.read, self.fd,
                                                       min(READ_CHUNK, remaining)))


async def read_file(request: Request) -> Response:
    target = await _view_root(request)
    q = request.query_params
    spath = sprite_path(q.get("path", ""), q.get("workingDir"))
    fd, size = await _in_view(target, lambda view: view.open_for_read(spath))
    return _FileStream(fd, size)


async def _written(writing: asyncio.Future[None] | None) -> LocalError | None:
    """Wait for a batch being written; the failure it met, if any."""
    if writing is None:
        return None
    try:
        await writing
    except SpriteFsError as exc:
        return _sync(exc)
    return None


async def _receive_into(request: Request, pending: PendingWrite) -> LocalError | None:
    """Write the body as it arrives, one batch on disk (in a worker thread) while the
    next is received; after a failure the rest of the body is read and dropped, so the
    client gets our answer. Returns the failure, if any."""
    batch: list[bytes] = []
    batched = 0
    writing: asyncio.Future[None] | None = None
    failure: LocalError | None = None
    try:
        async for chunk in request.stream():
            if failure is not None:
                continue
            batch.append(chunk)
            batched += len(chunk)
            if batched >= WRITE_BATCH:
                failure = await _written(writing)
                writing = None
                if failure is None:
                    writing = asyncio.ensure_future(asyncio.to_thread(pending.write_chunks,
                                                                      batch))
                else:
                    await asyncio.to_thread(pending.abort)  # free the space at once
                batch, batched = [], 0
        if failure is None:
            failure = await _written(writing)
        writing = None
        if failure is None and batch:
            failure = await _written(asyncio.ensure_future(
                asyncio.to_thread(pending.write_chunks, batch)))
    finally:
        if writing is not None:
            with contextlib.suppress(Exception):
                await writing  # the client went away: finish before the fd is closed
    return failure


async def write_file(request: Request) -> Response:
    target = await _view_root(request)
    q = request.query_params
    spath = sprite_path(q.get("path", ""), q.get("workingDir"))
    make_parents = query_bool(q.get("mkdirParents", q.get("mkdir")), True)
    mode = _parse_mode(q["mode"], spath) if q.get("mode") else None
    pending = await _in_view(target, lambda view: begin_write(
        view, spath, mode=mode, make_parents=make_parents))
    try:
        failure = await _receive_into(request, pending)
        if failure is None:
            await _off_loop(pending.commit)
    finally:
        pending.abort()
    if failure is not None:
        raise failure
    return JSONResponse({"path": spath, "size": pending.size, "mode": _mode(pending.mode)})


async def list_files(request: Request) -> Response:
    target = await _view_root(request)
    q = request.query_params
    spath = sprite_path(q.get("path", "") or "/", q.get("workingDir"))
    recursive = query_bool(q.get("recursive"), False)
    entries = await _in_view(target, lambda view: view.list(spath, recursive=recursive))
    return JSONResponse({"path": spath, "entries": [_entry(e) for e in entries],
                         "count": len(entries)})


async def delete_files(request: Request) -> Response:
    target = await _view_root(request)
    params = await _params(request)
    spath = sprite_path(params.get("path", ""), params.get("workingDir"))
    recursive = _flag(params, "recursive", False)
    await _in_view(target, lambda view: view.delete(spath, recursive=recursive))
    return JSONResponse({"deleted": [spath], "count": 1})


async def rename_file(request: Request) -> Response:
    target = await _view_root(request)
    body = await read_json_object(request)
    src = sprite_path(body.get("source", ""), body.get("workingDir"))
    dst = sprite_path(body.get("dest", ""), body.get("workingDir"))
    await _in_view(target, lambda view: view.rename(src, dst))
    return JSONResponse({"source": src, "dest": dst})


async def copy_files(request: Request) -> Response:
    target = await _view_root(request)
    body = await read_json_object(request)
    src = sprite_path(body.get("source", ""), body.get("workingDir"))
    dst = sprite_path(body.get("dest", ""), body.get("workingDir"))
    recursive = _flag(body, "recursive", True)
    preserve = _flag(body, "preserveAttrs", False)
    result = await _in_view(target, lambda view: copy(view, src, dst, recursive=recursive,
                                                    preserve=preserve))
    copied = [{"source": _text(s), "dest": _text(d)} for s, d in result.copied]
    return JSONResponse({"copied": copied, "count": len(copied),
                         "totalBytes": result.total_bytes})


async def chmod_files(request: Request) -> Response:
    target = await _view_root(request)
    body = await read_json_object(request)
    spath = sprite_path(body.get("path", ""), body.get("workingDir"))
    mode = _parse_mode(body.get("mode"), spath)
    recursive = _flag(body, "recursive", False)
    changed = await _in_view(target, lambda view: view.chmod(spath, mode, recursive=recursive))
    affected = [{"path": _text(p), "mode": _mode(mode)} for p in changed]
    return JSONResponse({"affected": affected, "count": len(affected)})


async def chown_files(request: Request) -> Response:
    target = await _view_root(request)
    body = await read_json_object(request)
    spath = sprite_path(body.get("path", ""), body.get("workingDir"))
    uid, gid = _owner_id(body, "uid", spath), _owner_id(body, "gid", spath)
    if uid == gid == -1:
        raise fs_error(errno.EINVAL, spath, "give uid, gid or both")
    recursive = _flag(body, "recursive", False)
    changed = await _in_view(target, lambda view: view.chown(spath, uid, gid,
                                                           recursive=recursive))
    affected = [{"path": _text(p), "uid": u, "gid": g} for p, u, g in changed]
    return JSONResponse({"affected": affected, "count": len(affected)})
