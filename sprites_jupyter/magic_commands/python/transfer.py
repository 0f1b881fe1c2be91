"""Values between this kernel and the sprite's Python session: ``push`` and ``pull``.

A value is serialised straight into fixed-size parts uploaded through the
filesystem API (the real service limits single uploads), so only one part is
ever held here besides the value; the agent reads the parts in order as one
stream. Pulling goes the other way: the agent writes one file, this side streams
it back. A ``.npy`` array is read straight into the array's own memory as the bytes
arrive, a pickle loaded as they arrive; Parquet (it seeks) and bytes (allocated once)
go through a file on disk first.
Formats: bytes raw, numpy arrays as ``.npy``, DataFrames as Parquet when pyarrow
is on both sides, anything else by pickle (cloudpickle when both sides have it).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import io
import os
import pickle
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ...client import Sprite
from ...remote.python_agent_values import write_value
from ..context import CommandContext
from .session import HOME, STATE_DIR

if TYPE_CHECKING:
    from .session import PythonSession

__all__ = ["PartWriter", "pull_value", "push_value"]

PART_SIZE = 8 * 1024 * 1024


class PartWriter:
    """A write-only file that uploads every ``part_size`` bytes as the next part."""

    def __init__(self, sprite: Sprite, folder: str, part_size: int = PART_SIZE) -> None:
        self.sprite = sprite
        self.folder = folder
        self.part_size = part_size
        self.parts = 0
        self.size = 0
        self._buffer = bytearray()

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        written = len(view)
        while view:
            room = self.part_size - len(self._buffer)
            self._buffer += view[:room]
            view = view[room:]
            if len(self._buffer) >= self.part_size:
                self._upload()
        self.size += written
        return written

    def tell(self) -> int:
        return self.size

    def seekable(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        """Parts go up when full; ``close`` sends the last one."""

    @property
    def closed(self) -> bool:
        return False

    def close(self) -> None:
        if self._buffer or not self.parts:
            self._upload()

    def _upload(self) -> None:
        self.sprite.write_file(f"{self.folder}/{self.parts:06d}", bytes(self._buffer))
        self.parts += 1
        self._buffer.clear()
        # httpx's request/response objects form reference cycles that keep each part's
        # bytes alive until the collector runs; collect the young ones now.
        gc.collect(1)


def _type_name(value: Any) -> str:
    kind = type(value)
    return kind.__qualname__ if kind.__module__ == "builtins" else \
        f"{kind.__module__.split('.')[0]}.{kind.__qualname__}"


def _size(count: int) -> str:
    size = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def _local_has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


_FORMAT_MODULES = ("numpy", "pandas", "pyarrow", "cloudpickle")
# Import names whose pip package is named otherwise.
_PIP_NAMES = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow",
              "yaml": "pyyaml", "skimage": "scikit-image", "bs4": "beautifulsoup4"}


def _pip_name(module: str) -> str:
    return _PIP_NAMES.get(module, module)


def _session_has(session: PythonSession) -> dict[str, bool]:
    """What the session can import; asked again when something a transfer could use was
    missing (so a package installed mid-session is used)."""
    has = session.info.get("has") or {}
    if all(has.get(module) for module in _FORMAT_MODULES):
        return has
    return session.capabilities()


def _push_format(value: Any, remote: dict[str, bool], name: str, python: str) -> str:
    module = type(value).__module__.split(".")[0]
    if type(value) is bytes:
        return "raw"
    if module in ("pandas", "numpy") and not remote.get(module):
        raise UsageError(f"Cannot push {name} ({_type_name(value)}): the sprite's {python} "
                         f"cannot import {module}; install it there (%sprite exec {python} "
                         f"-m pip install {module})")
    if module == "numpy" and type(value).__name__ == "ndarray" and value.dtype != object:
        return "npy"
    if type(value).__name__ == "DataFrame" and module == "pandas" \
            and remote.get("pyarrow") and _local_has("pyarrow"):
        return "parquet"
    if remote.get("cloudpickle") and _local_has("cloudpickle"):
        return "cloudpickle"
    return "pickle"


class _ChunkStream(io.RawIOBase):
    """An iterator of byte chunks as a readable stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of what is still to be read."""
        self._pending = memoryview(bytes(data) + bytes(self._pending))

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _read(sprite: Sprite, path: str, kind: str) -> Any:
    """Load a value the agent wrote: an array straight into its own memory as the bytes
    arrive, a pickle as it streams; Parquet (it seeks) and bytes (so the value is
    allocated once) via a local temporary file."""
    with contextlib.closing(sprite.iter_file(path)) as chunks:
        if kind == "npy":
            return _read_npy(_ChunkStream(chunks))
        if kind in ("pickle", "cloudpickle"):
            return pickle.load(io.BufferedReader(_ChunkStream(chunks), PART_SIZE))
        handle, local_path = tempfile.mkstemp(prefix="sprite-pull-")
        try:
            with os.fdopen(handle, "wb") as target:
                for chunk in chunks:
                    target.write(chunk)
            if kind == "parquet":
                import pandas

                return pandas.read_parquet(local_path)
            with open(local_path, "rb") as source:
                return source.read()
        finally:
            os.unlink(local_path)


def _read_npy(stream: _ChunkStream) -> Any:
    """An ``.npy`` stream as an array, its data copied once, into the array's memory
    (``numpy.lib.format.read_array`` reads it in 256 KB pieces and copies each twice)."""
    import numpy
    from numpy.lib import format as npy

    version = npy.read_magic(stream)
    if version != (1, 0):  # headers too long for 1.0, or field names not in ASCII
        stream.unread(npy.magic(*version))
        return npy.read_array(io.BufferedReader(stream, PART_SIZE), allow_pickle=False)
    shape, fortran_order, dtype = npy.read_array_header_1_0(stream)
    count = 1
    for length in shape:
        count *= length
    flat = numpy.empty(count, dtype=dtype)
    view = flat.data.cast("B")
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            raise UsageError(f"the pulled array ended after {filled:,} of {len(view):,} bytes")
        filled += got
    if fortran_order:
        return flat.reshape(shape[::-1]).transpose()
    return flat.reshape(shape)


def _load_failure(error: Exception, remote: str, type_name: str) -> UsageError:
    """One line for a pulled value this kernel cannot load, and what to do about it."""
    if isinstance(error, ImportError):
        missing = (error.name or str(error)).split(".")[0]
        return UsageError(f"Cannot pull {remote} ({type_name}): the kernel has no {missing}: "
                          f"pip install {_pip_name(missing)} here, or pull a plain form "
                          "(e.g. a dict or list made from it)")
    if isinstance(error, AttributeError) and "__main__" in str(error):
        return UsageError(f"Cannot pull {remote} ({type_name}): its class was defined in a "
                          "%%sprite_python cell, which this kernel does not have: define it "
                          "here too, or pull a plain form")
    return UsageError(f"Cannot pull {remote} ({type_name}): this kernel cannot load it "
                      f"({type(error).__name__}: {error})")


def _accepted() -> list[str]:
    formats = ["raw", "pickle"]
    formats += [name for name, module in (("npy", "numpy"), ("parquet", "pyarrow"),
                                          ("cloudpickle", "cloudpickle")) if _local_has(module)]
    return formats


def _upload(value: Any, kind: str, writer: PartWriter, name: str) -> None:
    try:
        write_value(value, kind, writer)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError) as error:
        raise UsageError(f"Cannot push {name}: a {_type_name(value)} cannot be serialised "
                         f"({error})") from None
    writer.close()


def push_value(ctx: CommandContext, session: PythonSession, local: str, remote: str) -> None:
    """Send ``local`` from this kernel to ``remote`` in the session (journaled)."""
    sprite = session.sprite
    with ctx.operation(sprite.name, "push", local):
        if local not in ctx.shell.user_ns:
            raise UsageError(f"No variable {local} in this kernel")
        value = ctx.shell.user_ns[local]
        kind = _push_format(value, _session_has(session), local, session.python)
        folder = f"{STATE_DIR}/transfer/{uuid.uuid4().hex}"
        writer = PartWriter(sprite, f"{HOME}/{folder}")
        started = time.monotonic()
        try:
            _upload(value, kind, writer, local)
        except BaseException:
            with contextlib.suppress(Exception):
                sprite.delete(f"{HOME}/{folder}", recursive=True)
            raise
        done = session.call("load", name=remote, dir=folder, parts=writer.parts, format=kind)
        if done.get("status") != "ok":
            ename, evalue = done.get("ename"), done.get("evalue")
            if ename == "ModuleNotFoundError":
                missing = str(evalue).split("'")[1] if "'" in str(evalue) else str(evalue)
                raise UsageError(f"Cannot push {local} ({_type_name(value)}): the sprite's "
                                 f"{session.python} has no {missing}: install it there "
                                 f"(%sprite exec {session.python} -m pip install "
                                 f"{_pip_name(missing.split('.')[0])}), or push a plain form")
            raise UsageError(f"Cannot push {local} to sprite {sprite.name}: {ename}: {evalue}")
    print(f"Pushed {local} ({_type_name(value)}, {_size(writer.size)} as {kind}) to "
          f"{remote} on sprite {sprite.name} in {time.monotonic() - started:.1f} s")


def pull_value(ctx: CommandContext, session: PythonSession, remote: str, local: str) -> None:
    """Fetch ``remote`` from the session into this kernel's ``local`` (journaled)."""
    sprite = session.sprite
    with ctx.operation(sprite.name, "pull", remote):
        path = f"{STATE_DIR}/transfer/{uuid.uuid4().hex}.out"
        started = time.monotonic()
        done = session.call("dump", name=remote, path=path, formats=_accepted())
        if done.get("status") != "ok":
            ename, evalue = done.get("ename"), done.get("evalue")
            if ename == "NameError":
                raise UsageError(f"No variable {remote} in the Python session on sprite "
                                 f"{sprite.name}")
            raise UsageError(f"Cannot pull {remote}: a {done.get('type_name') or 'value'} "
                             f"that cannot be serialised ({ename}: {evalue})")
        try:
            ctx.shell.user_ns[local] = _read(sprite, f"{HOME}/{path}", str(done["format"]))
        except (ImportError, AttributeError, pickle.UnpicklingError, EOFError) as error:
            raise _load_failure(error, remote, str(done.get("type_name") or "value")) from None
        finally:
            with contextlib.suppress(Exception):
                sprite.delete(f"{HOME}/{path}")
    print(f"Pulled {remote} ({done.get('type_name')}, {_size(int(done.get('size', 0)))} as "
          f"{done['format']}) into {local} from sprite {sprite.name} in "
          f"{time.monotonic() - started:.1f} s")
