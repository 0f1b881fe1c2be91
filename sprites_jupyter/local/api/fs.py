"""Filesystem endpoints (reference section 6).

Paths are sprite paths resolved against ``workingDir`` (default ``/``) and mapped
into the sprite's root by :mod:`..paths`, which refuses escapes. Failures use the
reference's filesystem error shape: ``{"error", "code", "path"}``.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from ..errors import ApiError
from ..state import state_of
from ..storage.paths import resolve, to_sprite_path
from ..wire import query_bool, read_json_object, rfc3339

_ERRNO_STATUS = {
    errno.ENOENT: (404, "ENOENT"),
    errno.EEXIST: (409, "EEXIST"),
    errno.ENOTEMPTY: (409, "ENOTEMPTY"),
    errno.ENOTDIR: (400, "ENOTDIR"),
    errno.EISDIR: (400, "EISDIR"),
    errno.EINVAL: (400, "EINVAL"),
    errno.EACCES: (403, "EACCES"),
    errno.EPERM: (403, "EACCES"),
}


def fs_error(err: int, path: str, message: str | None = None) -> ApiError:
    """An ApiError for an errno, with the reference's status and code."""
    status, code = _ERRNO_STATUS.get(err, (500, "EIO"))
    return ApiError(status, message or os.strerror(err).lower(), fs_code=code, path=path)


@contextmanager
def _os_errors(path: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise fs_error(exc.errno or errno.EIO, path) from None


async def _root(request: Request) -> Path:
    """The sprite's root, once any restore of it has finished."""
    server = state_of(request)
    name = request.path_params["name"]
    server.require_sprite(name)
    await server.runtime(name).settled()
    server.store.touch_running(name)
    return server.sprite_root(name)


def _mode(bits: int) -> str:
    return f"{stat.S_IMODE(bits):04o}"


def _parse_mode(value: object, path: str) -> int:
    try:
        mode = int(value, 8) if isinstance(value, str) else int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise fs_error(errno.EINVAL, path, f"invalid mode {value!r}: use an octal string "
                                           "such as 0644") from None
    if not 0 <= mode <= 0o7777:
        raise fs_error(errno.EINVAL, path, f"invalid mode {value!r}: must be 0000-7777")
    return mode


def _entry(root: Path, host: Path) -> dict[str, Any]:
    info = host.lstat()
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    else:
        kind = "file"
    return {
        "name": host.name,
        "path": to_sprite_path(root, host),
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


async def read_file(request: Request) -> Response:
    root = await _root(request)
    q = request.query_params
    spath, host = resolve(root, q.get("path", ""), q.get("workingDir"))
    with _os_errors(spath):
        if host.is_dir():
            raise fs_error(errno.EISDIR, spath, "is a directory: use /fs/list")
        host.stat()
    return FileResponse(host, media_type="application/octet-stream")


async def write_file(request: Request) -> Response:
    root = await _root(request)
    q = request.query_params
    spath, host = resolve(root, q.get("path", ""), q.get("workingDir"))
    mkdir_flag = q.get("mkdirParents", q.get("mkdir"))
    make_parents = query_bool(mkdir_flag, True)
    mode = _parse_mode(q["mode"], spath) if q.get("mode") else None
    with _os_errors(spath):
        if host.is_dir():
            raise fs_error(errno.EISDIR, spath, "is a directory: choose a file path")
        if make_parents:
            host.parent.mkdir(parents=True, exist_ok=True)
        existed = host.exists()
        size = 0
        with open(host, "wb") as handle:
            async for chunk in request.stream():
                handle.write(chunk)
                size += len(chunk)
        if mode is not None:
            host.chmod(mode)
        elif not existed:
            host.chmod(0o644)
        final_mode = _mode(host.stat().st_mode)
    return JSONResponse({"path": spath, "size": size, "mode": final_mode})


async def list_files(request: Request) -> Response:
    root = await _root(request)
    q = request.query_params
    spath, host = resolve(root, q.get("path", "") or "/", q.get("workingDir"))
    recursive = query_bool(q.get("recursive"), False)
    with _os_errors(spath):
        if not host.is_dir():
            entries = [_entry(root, host)]
        elif recursive:
            entries = [_entry(root, Path(d) / n) for d, dirs, files in os.walk(host)
                       for n in sorted(dirs + files)]
        else:
            entries = [_entry(root, child) for child in sorted(host.iterdir())]
    return JSONResponse({"path": spath, "entries": entries, "count": len(entries)})


async def delete_files(request: Request) -> Response:
    root = await _root(request)
    params = await _params(request)
    spath, host = resolve(root, params.get("path", ""), params.get("workingDir"),
                          follow_last=False)
    recursive = params.get("recursive")
    recursive = recursive if isinstance(recursive, bool) else query_bool(recursive, False)
    if host == Path(os.path.realpath(root)):
        raise fs_error(errno.EACCES, spath, "refusing to delete the sprite's root")
    with _os_errors(spath):
        if host.is_dir() and not host.is_symlink():
            if recursive:
                shutil.rmtree(host)
            else:
                host.rmdir()
        else:
            host.unlink()
    return JSONResponse({"deleted": [spath], "count": 1})


async def rename_file(request: Request) -> Response:
    root = await _root(request)
    body = await read_json_object(request)
    src, src_host = resolve(root, body.get("source", ""), body.get("workingDir"),
                            follow_last=False)
    dst, dst_host = resolve(root, body.get("dest", ""), body.get("workingDir"),
                            follow_last=False)
    with _os_errors(src):
        if not src_host.exists() and not src_host.is_symlink():
            raise fs_error(errno.ENOENT, src)
        os.replace(src_host, dst_host)
    return JSONResponse({"source": src, "dest": dst})


async def copy_files(request: Request) -> Response:
    root = await _root(request)
    body = await read_json_object(request)
    src, src_host = resolve(root, body.get("source", ""), body.get("workingDir"))
    _, dst_host = resolve(root, body.get("dest", ""), body.get("workingDir"),
                          follow_last=False)
    recursive = body.get("recursive", True) is not False
    copier = shutil.copy2 if body.get("preserveAttrs") else shutil.copy
    copied: list[dict[str, str]] = []
    total = 0

    def copy_one(source: str, dest: str) -> str:
        nonlocal total
        copier(source, dest)
        total += os.path.getsize(dest)
        copied.append({"source": to_sprite_path(root, Path(source)),
                       "dest": to_sprite_path(root, Path(dest))})
        return dest

    with _os_errors(src):
        if src_host.is_dir():
            if not recursive:
                raise fs_error(errno.EISDIR, src, "is a directory: pass recursive=true")
            shutil.copytree(src_host, dst_host, symlinks=True, copy_function=copy_one,
                            dirs_exist_ok=True)
        elif src_host.exists():
            copy_one(str(src_host), str(dst_host))
        else:
            raise fs_error(errno.ENOENT, src)
    return JSONResponse({"copied": copied, "count": len(copied), "totalBytes": total})


def _walk(host: Path, recursive: bool) -> list[Path]:
    if recursive and host.is_dir():
        return [host] + [Path(d) / n for d, dirs, files in os.walk(host) for n in dirs + files]
    return [host]


async def chmod_files(request: Request) -> Response:
    root = await _root(request)
    body = await read_json_object(request)
    spath, host = resolve(root, body.get("path", ""), body.get("workingDir"))
    mode = _parse_mode(body.get("mode"), spath)
    affected = []
    with _os_errors(spath):
        for target in _walk(host, bool(body.get("recursive"))):
            if target.is_symlink():
                continue
            target.chmod(mode)
            affected.append({"path": to_sprite_path(root, target), "mode": _mode(mode)})
    return JSONResponse({"affected": affected, "count": len(affected)})


async def chown_files(request: Request) -> Response:
    root = await _root(request)
    body = await read_json_object(request)
    spath, host = resolve(root, body.get("path", ""), body.get("workingDir"))
    uid, gid = body.get("uid"), body.get("gid")
    if uid is None and gid is None:
        raise fs_error(errno.EINVAL, spath, "give uid, gid or both")
    if not all(v is None or isinstance(v, int) for v in (uid, gid)):
        raise fs_error(errno.EINVAL, spath, "uid and gid must be integers")
    affected = []
    with _os_errors(spath):
        for target in _walk(host, bool(body.get("recursive"))):
            os.chown(target, -1 if uid is None else uid, -1 if gid is None else gid,
                     follow_symlinks=False)
            info = target.lstat()
            affected.append({"path": to_sprite_path(root, target), "uid": info.st_uid,
                             "gid": info.st_gid})
    return JSONResponse({"affected": affected, "count": len(affected)})
