"""Filesystem endpoints (reference section 6).

Paths are sprite paths resolved against ``workingDir`` (default ``/``). The work is
done off the event loop by :mod:`..storage.sprite_fs`, inside the sprite's own view
(:func:`.fs_view.view_root`), so a symlink resolves as it would for the sprite's processes and
nothing outside the sprite is reached. Failures use the reference's filesystem error
shape: ``{"error", "code", "path"}``, naming sprite paths only.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from ..errors import LocalError
from ..storage.paths import sprite_path
from ..storage.sprite_fs import PendingWrite, SpriteFsError, begin_write, copy
from ..wire import query_bool, read_json_object
from .errors import ApiError
from .fs_view import (
    disk_room,
    entry_json,
    fs_error,
    in_view,
    json_name,
    octal_mode,
    off_loop,
    owner_id,
    parse_mode,
    view_root,
)

READ_CHUNK = 1 << 20  # what one send hands the socket
WRITE_BATCH = 4 << 20  # what one writev hands the disk


def _flag(params: dict[str, Any], name: str, default: bool) -> bool:
    """A boolean from a JSON body (``true``) or a query string (``"true"``)."""
    value = params.get(name)
    if value is None or isinstance(value, bool):
        return default if value is None else value
    if isinstance(value, str):
        return query_bool(value, default)
    raise ApiError(400, f"{name} must be true or false, not {value!r}")


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
            while remaining > 0:
                if reading is None:
                    reading = self._read(remaining)
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
    target = await view_root(request)
    q = request.query_params
    spath = sprite_path(q.get("path", ""), q.get("workingDir"))
    fd, size = await in_view(target, lambda view: view.open_for_read(spath))
    return _FileStream(fd, size)


async def _written(writing: asyncio.Future[None] | None) -> LocalError | None:
    """Wait for a batch being written; the failure it met, if any."""
    if writing is None:
        return None
    try:
        await writing
    except SpriteFsError as exc:
        return fs_error(exc.errno, exc.path, exc.message)
    except LocalError as exc:  # the sprite's disk limit
        return exc
    return None


def _write_batch(pending: PendingWrite, batch: list[bytes], size: int,
                 require_room: Callable[[int], None]) -> None:
    """One worker-thread job: check the sprite's disk limit (a statfs), then write."""
    require_room(size)
    pending.write_chunks(batch)


async def _receive_into(request: Request, pending: PendingWrite,
                        require_room: Callable[[int], None]) -> LocalError | None:
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
                    writing = asyncio.ensure_future(asyncio.to_thread(
                        _write_batch, pending, batch, batched, require_room))
                else:
                    await asyncio.to_thread(pending.abort)  # free the space at once
                batch, batched = [], 0
        if failure is None:
            failure = await _written(writing)
        writing = None
        if failure is None and batch:
            failure = await _written(asyncio.ensure_future(asyncio.to_thread(
                _write_batch, pending, batch, batched, require_room)))
    finally:
        if writing is not None:
            with contextlib.suppress(Exception):
                await writing  # the client went away: finish before the fd is closed
    return failure


def _declared_length(request: Request) -> int:
    with contextlib.suppress(ValueError):
        return max(0, int(request.headers.get("content-length", "0")))
    return 0


async def write_file(request: Request) -> Response:
    target = await view_root(request)
    q = request.query_params
    spath = sprite_path(q.get("path", ""), q.get("workingDir"))
    make_parents = query_bool(q.get("mkdirParents", q.get("mkdir")), True)
    mode = parse_mode(q["mode"], spath) if q.get("mode") else None
    require_room = disk_room(request, spath)
    require_room(_declared_length(request))
    pending = await in_view(target, lambda view: begin_write(
        view, spath, mode=mode, make_parents=make_parents))
    try:
        failure = await _receive_into(request, pending, require_room)
        if failure is None:
            await off_loop(pending.commit)
    except LocalError as exc:
        failure = exc
    finally:
        pending.abort()
    if failure is not None:
        if failure.fs_code == "ENOSPC":
            require_room(0, failed=True)  # a sprite's disk limit says so, naming it
        raise failure
    return JSONResponse({"path": spath, "size": pending.size, "mode": octal_mode(pending.mode)})


async def list_files(request: Request) -> Response:
    target = await view_root(request)
    q = request.query_params
    spath = sprite_path(q.get("path", "") or "/", q.get("workingDir"))
    recursive = query_bool(q.get("recursive"), False)
    entries = await in_view(target, lambda view: view.list(spath, recursive=recursive))
    return JSONResponse({"path": spath, "entries": [entry_json(e) for e in entries],
                         "count": len(entries)})


async def delete_files(request: Request) -> Response:
    target = await view_root(request)
    params = await _params(request)
    spath = sprite_path(params.get("path", ""), params.get("workingDir"))
    recursive = _flag(params, "recursive", False)
    await in_view(target, lambda view: view.delete(spath, recursive=recursive))
    return JSONResponse({"deleted": [spath], "count": 1})


async def rename_file(request: Request) -> Response:
    target = await view_root(request)
    body = await read_json_object(request)
    src = sprite_path(body.get("source", ""), body.get("workingDir"))
    dst = sprite_path(body.get("dest", ""), body.get("workingDir"))
    await in_view(target, lambda view: view.rename(src, dst))
    return JSONResponse({"source": src, "dest": dst})


async def copy_files(request: Request) -> Response:
    target = await view_root(request)
    body = await read_json_object(request)
    src = sprite_path(body.get("source", ""), body.get("workingDir"))
    dst = sprite_path(body.get("dest", ""), body.get("workingDir"))
    recursive = _flag(body, "recursive", True)
    preserve = _flag(body, "preserveAttrs", False)
    try:
        result = await in_view(target, lambda view: copy(view, src, dst, recursive=recursive,
                                                        preserve=preserve))
    except ApiError as exc:
        if exc.fs_code == "ENOSPC":
            disk_room(request, dst)(0, failed=True)
        raise
    copied = [{"source": json_name(s), "dest": json_name(d)} for s, d in result.copied]
    return JSONResponse({"copied": copied, "count": len(copied),
                         "totalBytes": result.total_bytes})


async def chmod_files(request: Request) -> Response:
    target = await view_root(request)
    body = await read_json_object(request)
    spath = sprite_path(body.get("path", ""), body.get("workingDir"))
    mode = parse_mode(body.get("mode"), spath)
    recursive = _flag(body, "recursive", False)
    changed = await in_view(target, lambda view: view.chmod(spath, mode, recursive=recursive))
    affected = [{"path": json_name(p), "mode": octal_mode(mode)} for p in changed]
    return JSONResponse({"affected": affected, "count": len(affected)})


async def chown_files(request: Request) -> Response:
    target = await view_root(request)
    body = await read_json_object(request)
    spath = sprite_path(body.get("path", ""), body.get("workingDir"))
    uid, gid = owner_id(body, "uid", spath), owner_id(body, "gid", spath)
    if uid == gid == -1:
        raise fs_error(errno.EINVAL, spath, "give uid, gid or both")
    recursive = _flag(body, "recursive", False)
    changed = await in_view(target, lambda view: view.chown(spath, uid, gid,
                                                           recursive=recursive))
    affected = [{"path": json_name(p), "uid": u, "gid": g} for p, u, g in changed]
    return JSONResponse({"affected": affected, "count": len(affected)})
