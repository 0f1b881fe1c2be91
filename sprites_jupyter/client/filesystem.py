"""A sprite's filesystem over the REST ``/fs`` endpoints, plus upload/download of trees.

Relative paths are resolved against ``/home/sprite`` here, so the server always gets
absolute paths (and ``workingDir=/``), as the reference recommends.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from .bulk_read import BodyReader
from .errors import ConnectionFailed, InvalidRequest, NotFound, ProtocolError
from .handle import SpriteHandle
from .models import FileEntry

HOME = "/home/sprite"
SEND_SLICE = 1 << 20
_ROOT = "/"


def remote_path(path: str) -> str:
    """An absolute, normalised sprite path (relative ones start at ``/home/sprite``)."""
    if not isinstance(path, str) or not path:
        raise ValueError("give a path inside the sprite, e.g. /home/sprite/notes.txt")
    joined = posixpath.normpath(posixpath.join(HOME, path))
    return "/" + joined.lstrip("/")


def octal_mode(mode: str | int) -> str:
    """``"0755"`` from ``0o755``, ``"755"`` or ``"0755"``."""
    if isinstance(mode, int):
        value = mode
    else:
        try:
            value = int(str(mode), 8)
        except ValueError:
            raise ValueError(f"invalid mode {mode!r}: use an octal string like '0755'") from None
    if not 0 <= value <= 0o7777:
        raise ValueError(f"invalid mode {mode!r}: use an octal string like '0755'")
    return f"{value:04o}"


class _Slices:
    """A request body sent as slices of its buffers, never copied whole: a socket send
    takes a slice as it is, where one of a large ``bytes`` copies the rest of it after
    every partial send. Iterable again, so a retried request sends it again."""

    def __init__(self, buffers: list[memoryview]) -> None:
        self.buffers = buffers
        self.size = sum(len(buffer) for buffer in buffers)

    def __iter__(self) -> Iterator[bytes]:
        for buffer in self.buffers:
            for start in range(0, len(buffer), SEND_SLICE):
                yield buffer[start:start + SEND_SLICE]  # type: ignore[misc]  # httpx sends any buffer


class FilesystemMixin(SpriteHandle):
    def read_file(self, path: str) -> bytes:
        target = remote_path(path)
        response = self._http.request("GET", self._path("/fs/read"),
                                      params={"path": target, "workingDir": _ROOT},
                                      what=f"read {target} on {self.name}")
        return response.content

    def iter_file(self, path: str) -> Generator[bytes, None, None]:
        """A file's bytes as they arrive, for files too large to hold at once."""
        target = remote_path(path)
        response = self._http.stream("GET", self._path("/fs/read"),
                                     params={"path": target, "workingDir": _ROOT},
                                     what=f"read {target} on {self.name}",
                                     read_timeout=self._http.timeout, bulk=True)
        try:
            yield from self._body(response, f"read {target} on {self.name}")
        finally:
            response.close()

    def open_file(self, path: str) -> BodyReader:
        """A file as a read-only binary stream (close it, or use ``with``): ``readinto``
        fills the caller's memory straight from the connection where it can, so a large
        value is received once, in place."""
        target = remote_path(path)
        what = f"read {target} on {self.name}"
        response = self._http.stream("GET", self._path("/fs/read"),
                                     params={"path": target, "workingDir": _ROOT},
                                     what=what, read_timeout=self._http.timeout, bulk=True)
        return BodyReader(response, lambda exc: self._broke_off(exc, what, response))

    def _body(self, response: httpx.Response, what: str) -> Iterator[bytes]:
        """A response's bytes as they arrive; a transfer that breaks off mid-way is a
        one-line :class:`ConnectionFailed`, never a short file."""
        try:
            yield from response.iter_bytes()
        except httpx.HTTPError as exc:
            raise self._broke_off(exc, what, response) from None

    def _broke_off(self, exc: httpx.HTTPError, what: str,
                   response: httpx.Response) -> ConnectionFailed:
        return ConnectionFailed(self._http.redact(f"{what}: the transfer broke off "
                                                  f"({str(exc) or type(exc).__name__})"),
                                url=str(response.url))

    def write_file(self, path: str, data: bytes | bytearray | str | memoryview, *,
                   mode: str | int = "0644", mkdir_parents: bool = True) -> FileEntry:
        """Create or replace a file; returns its path, size and mode.

        ``data`` is text or any bytes-like object (a ``bytearray``, a ``memoryview``),
        sent as it is, never copied whole first.
        """
        return self.write_buffers(path, [data.encode() if isinstance(data, str) else data],
                                  mode=mode, mkdir_parents=mkdir_parents)

    def write_buffers(self, path: str, buffers: Sequence[bytes | bytearray | memoryview], *,
                      mode: str | int = "0644", mkdir_parents: bool = True) -> FileEntry:
        """Create or replace a file with ``buffers`` back to back (say a header and an
        array's memory), streamed in one request without joining or copying them."""
        target = remote_path(path)
        body = _Slices([memoryview(buffer).cast("B") for buffer in buffers])
        response = self._http.request(
            "PUT", self._path("/fs/write"), content=body,
            headers={"Content-Type": "application/octet-stream",
                     "Content-Length": str(body.size)},
            params={"path": target, "workingDir": _ROOT, "mode": octal_mode(mode),
                    "mkdirParents": "true" if mkdir_parents else "false"},
            what=f"write {target} on {self.name}")
        reply = response.json() if response.content else {}
        return FileEntry.from_json({"path": target, "size": body.size,
                                    "mode": octal_mode(mode), "type": "file", **reply})

    def list_dir(self, path: str = HOME) -> list[FileEntry]:
        """A directory's entries (or, for a file, that one file)."""
        target = remote_path(path)
        response = self._http.request("GET", self._path("/fs/list"),
                                      params={"path": target, "workingDir": _ROOT},
                                      what=f"list {target} on {self.name}")
        body = response.json()
        entries = body.get("entries") if isinstance(body, dict) else None
        if not isinstance(entries, list):
            raise ProtocolError(f"list {target} on {self.name}: no entries in the answer")
        return [FileEntry.from_json(entry) for entry in entries]

    def stat(self, path: str) -> FileEntry:
        """One entry, found by listing its parent (correct for directories too)."""
        target = remote_path(path)
        if target == _ROOT:
            return FileEntry(name=_ROOT, path=_ROOT, type="directory", mode="0755", is_dir=True)
        parent, name = posixpath.split(target)
        for entry in self.list_dir(parent):
            if entry.name == name:
                return entry
        raise NotFound(f"stat {target} on {self.name}: no such file or directory",
                       status=404, code="ENOENT")

    def delete(self, path: str, *, recursive: bool = False) -> None:
        """Remove a file, or a directory tree with ``recursive=True``."""
        target = remote_path(path)
        params = {"path": target, "workingDir": _ROOT}
        if recursive:
            params["recursive"] = "true"
        self._http.request("DELETE", self._path("/fs/delete"), params=params,
                           what=f"delete {target} on {self.name}")

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (replacing a file there)."""
        self._post("rename", {"source": remote_path(src), "dest": remote_path(dst)},
                   what=f"rename {src} to {dst}")

    def copy(self, src: str, dst: str, *, recursive: bool = True) -> None:
        self._post("copy", {"source": remote_path(src), "dest": remote_path(dst),
                            "recursive": recursive}, what=f"copy {src} to {dst}")

    def chmod(self, path: str, mode: str | int, *, recursive: bool = False) -> None:
        body: dict[str, Any] = {"path": remote_path(path), "mode": octal_mode(mode)}
        if recursive:
            body["recursive"] = True
        self._post("chmod", body, what=f"chmod {path}")

    def chown(self, path: str, *, uid: int | None = None, gid: int | None = None,
              recursive: bool = False) -> None:
        """Change owner and/or group (numeric ids)."""
        if uid is None and gid is None:
            raise ValueError("chown needs uid, gid or both")
        body: dict[str, Any] = {"path": remote_path(path)}
        body.update({k: v for k, v in (("uid", uid), ("gid", gid)) if v is not None})
        if recursive:
            body["recursive"] = True
        self._post("chown", body, what=f"chown {path}")

    def _post(self, action: str, body: dict[str, Any], *, what: str) -> None:
        self._http.request("POST", self._path(f"/fs/{action}"),
                           json={**body, "workingDir": _ROOT}, what=f"{what} on {self.name}")

    def upload(self, local_path: str | os.PathLike[str], remote: str) -> int:
        """Copy a local file or folder to ``remote``, keeping permission bits; returns files."""
        source = Path(local_path)
        target = remote_path(remote)
        if source.is_file():
            self.write_file(target, source.read_bytes(), mode=source.stat().st_mode & 0o777)
            return 1
        if not source.is_dir():
            raise InvalidRequest(f"upload: {source} is not a file or folder here", status=400)
        count = 0
        for folder, dirs, files in os.walk(source):
            base = Path(folder)
            remote_folder = posixpath.join(target, base.relative_to(source).as_posix())
            if not files and not dirs:
                keep = posixpath.join(remote_folder, ".keep")
                self.write_file(keep, b"")
                self.delete(keep)
            for name in sorted(files):
                local = base / name
                self.write_file(posixpath.join(remote_folder, name), local.read_bytes(),
                                mode=local.stat().st_mode & 0o777)
                count += 1
        return count

    def download(self, remote: str, local_path: str | os.PathLike[str]) -> int:
        """Copy a sprite file or folder to ``local_path``, keeping permission bits.

        The server's listing is not trusted: a name holding ``/``, ``..`` or NUL is
        refused (nothing lands outside ``local_path``), and set-id, sticky and
        world-writable bits are never applied.
        """
        entry = self.stat(remote)
        destination = Path(local_path)
        if not entry.is_dir:
            self._download_file(entry.path, entry, destination)
            return 1
        return self._download_tree(entry.path, destination)

    def _download_tree(self, folder: str, destination: Path) -> int:
        destination.mkdir(parents=True, exist_ok=True)
        count = 0
        for child in self.list_dir(folder):
            name = child.name
            if not name or name in (".", "..") or "/" in name or "\x00" in name:
                raise ProtocolError(f"download {folder} from {self.name}: the server listed "
                                    f"an unsafe name {name[:80]!r}; nothing was written for it")
            source = posixpath.join(folder, name)
            if child.is_dir:
                count += self._download_tree(source, destination / name)
            else:
                self._download_file(source, child, destination / name)
                count += 1
        return count

    def _download_file(self, source: str, entry: FileEntry, destination: Path) -> None:
        destination.parent.mkdir(parents=True, exist_ok=True)
        response = self._http.stream("GET", self._path("/fs/read"),
                                     params={"path": source, "workingDir": _ROOT},
                                     what=f"read {source} on {self.name}",
                                     read_timeout=self._http.timeout, bulk=True)
        partial = destination.with_name(destination.name + ".part")
        try:
            with partial.open("wb") as handle:
                for chunk in self._body(response, f"read {source} on {self.name}"):
                    handle.write(chunk)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        finally:
            response.close()
        partial.chmod(entry.mode_bits & 0o775)
        partial.replace(destination)
