"""Filesystem operations over the control connection, in the shape sprites-go's
``Fs*Control`` helpers use (reference section 5.4).

Each answers one JSON result frame, the same object as the REST endpoint (section 6);
``fs.read`` follows it with one binary frame of the bytes, and ``fs.write`` takes the
content as the one binary frame after ``op.start``. Arguments are strings (sprites-go
URL-encodes them); ``workingDir`` defaults to ``/home/sprite`` as sprites-go's does, and
``fs.read`` takes an optional byte range ``start`` … ``end`` (end exclusive). A failure
is the REST error object ``{"error", "code", "path"}``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.datastructures import QueryParams

from ..errors import LocalError
from ..storage.paths import SPRITE_HOME, sprite_path
from ..storage.sprite_fs import SpriteFsError, SpriteView, begin_write, copy
from ..wire import query_bool
from .control_channel import OpChannel, OpFailed
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

MAX_READ = 64 * 1024 * 1024
READ_RULE = ("fs.read over the control connection sends at most 64 MiB in one frame: read "
             "a range (start/end) or use GET /fs/read")


def _path(args: QueryParams, name: str = "path") -> str:
    return sprite_path(args.get(name, ""), args.get("workingDir") or SPRITE_HOME)


def _offset(args: QueryParams, name: str, spath: str) -> int | None:
    text = args.get(name)
    if not text:
        return None
    if not text.isdigit():
        raise fs_error(errno.EINVAL, spath, f"invalid {name} {text[:40]!r}: use a byte "
                                            "offset (a whole number)")
    return int(text)


def _read_range(view: SpriteView, spath: str, start: int | None, end: int | None) -> bytes:
    fd, size = view.open_for_read(spath)
    try:
        first = min(start or 0, size)
        stop = size if end is None else min(end, size)
        if stop - first > MAX_READ:
            raise SpriteFsError(errno.EINVAL, spath, READ_RULE)
        parts, offset = [], first
        while offset < stop:
            chunk = os.pread(fd, stop - offset, offset)
            if not chunk:
                break  # the file shrank while it was read
            parts.append(chunk)
            offset += len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


async def fs_read(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    spath = _path(channel.args)
    start = _offset(channel.args, "start", spath)
    end = _offset(channel.args, "end", spath)
    data = await in_view(root, lambda view: _read_range(view, spath, start, end))
    await channel.send_json({"path": spath, "size": len(data)})
    await channel.send_bytes(data)
    return {}


async def fs_write(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    spath = _path(channel.args)
    mode = parse_mode(channel.args["mode"], spath) if channel.args.get("mode") else None
    make_parents = query_bool(channel.args.get("mkdirParents"), True)
    content = await channel.receive()
    if content is None:
        raise OpFailed("op.cancelled", "fs.write released before its content arrived: send "
                                       "the file as one binary frame after op.start")
    data = content.encode() if isinstance(content, str) else content
    require_room = disk_room(channel.websocket, spath)
    require_room(len(data))
    pending = await in_view(root, lambda view: begin_write(view, spath, mode=mode,
                                                            make_parents=make_parents))
    try:
        await off_loop(pending.write, data)
        await off_loop(pending.commit)
    except LocalError as exc:
        if exc.fs_code == "ENOSPC":
            require_room(0, failed=True)
        raise
    finally:
        pending.abort()
    await channel.send_json({"path": spath, "size": pending.size, "mode": octal_mode(pending.mode)})
    return {}


async def fs_list(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    spath = sprite_path(channel.args.get("path") or ".",
                        channel.args.get("workingDir") or SPRITE_HOME)
    recursive = query_bool(channel.args.get("recursive"), False)
    entries = await in_view(root, lambda view: view.list(spath, recursive=recursive))
    await channel.send_json({"path": spath, "entries": [entry_json(e) for e in entries],
                             "count": len(entries)})
    return {}


async def fs_delete(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    spath = _path(channel.args)
    recursive = query_bool(channel.args.get("recursive"), False)
    await in_view(root, lambda view: view.delete(spath, recursive=recursive))
    await channel.send_json({"deleted": [spath], "count": 1})
    return {}


async def fs_rename(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    source, dest = _path(channel.args, "source"), _path(channel.args, "dest")
    await in_view(root, lambda view: view.rename(source, dest))
    await channel.send_json({"source": source, "dest": dest})
    return {}


async def fs_copy(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    source, dest = _path(channel.args, "source"), _path(channel.args, "dest")
    recursive = query_bool(channel.args.get("recursive"), False)
    preserve = query_bool(channel.args.get("preserveAttrs"), False)
    result = await in_view(root, lambda view: copy(view, source, dest, recursive=recursive,
                                                    preserve=preserve))
    copied = [{"source": json_name(s), "dest": json_name(d)} for s, d in result.copied]
    await channel.send_json({"copied": copied, "count": len(copied),
                             "totalBytes": result.total_bytes})
    return {}


async def fs_chmod(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    spath = _path(channel.args)
    mode = parse_mode(channel.args.get("mode"), spath)
    recursive = query_bool(channel.args.get("recursive"), False)
    changed = await in_view(root, lambda view: view.chmod(spath, mode, recursive=recursive))
    affected = [{"path": json_name(p), "mode": octal_mode(mode)} for p in changed]
    await channel.send_json({"affected": affected, "count": len(affected)})
    return {}


def _ids(args: QueryParams) -> dict[str, object]:
    """``uid``/``gid`` as the REST body has them: integers, absent meaning unchanged."""
    ids: dict[str, object] = {}
    for name in ("uid", "gid"):
        text = args.get(name)
        if text:
            ids[name] = int(text) if text.isdigit() else text
    return ids


async def fs_chown(channel: OpChannel) -> dict[str, Any]:
    root = await view_root(channel.websocket)
    spath = _path(channel.args)
    ids = _ids(channel.args)
    uid, gid = owner_id(ids, "uid", spath), owner_id(ids, "gid", spath)
    if uid == gid == -1:
        raise fs_error(errno.EINVAL, spath, "give uid, gid or both")
    recursive = query_bool(channel.args.get("recursive"), False)
    changed = await in_view(root, lambda view: view.chown(spath, uid, gid,
                                                           recursive=recursive))
    affected = [{"path": json_name(p), "uid": u, "gid": g} for p, u, g in changed]
    await channel.send_json({"affected": affected, "count": len(affected)})
    return {}


OPERATIONS: dict[str, Callable[[OpChannel], Awaitable[dict[str, Any]]]] = {
    "fs.read": fs_read, "fs.write": fs_write, "fs.list": fs_list, "fs.delete": fs_delete,
    "fs.rename": fs_rename, "fs.copy": fs_copy, "fs.chmod": fs_chmod, "fs.chown": fs_chown,
}
