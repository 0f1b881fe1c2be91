"""Values between this kernel and the sprite's Python session: ``push`` and ``pull``.

A value goes up through the filesystem API as parts of at most ``PART_SIZE`` (one
request each, streamed; ``bytes`` as one part whatever its size, which the agent reads
straight into one ``bytes``: parts would cost it a second copy of the value to join):
bytes and contiguous arrays straight from their own memory
(an array as its ``.npy`` header and then its buffer, nothing serialised or copied
here), anything else serialised into parts of ``SERIALISED_PART`` as it is written,
so only one part is held here besides the value. The ``load`` request goes first and
each part is announced once it is whole, so the agent reads one part (an array
straight into its own memory) while the next goes up, and removes it once read.
Pulling goes the other way: the agent writes one file, this side receives it into
the value's memory (an array or bytes straight from the socket, an Arrow stream or a
pickle as it loads). Formats: bytes raw, numpy arrays as ``.npy``, a DataFrame that is
one numeric array under labels as that array and its labels (``npy-frame``: moved from
and rebuilt around its own memory), other DataFrames as an Arrow IPC stream when
pyarrow is on both sides (their columns' memory as it is: Parquet costs ~7x the CPU to
encode), anything else by pickle (cloudpickle when both sides have it).
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import io
import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError

from ...client import Sprite
from ...remote.python_agent_values import (
    frame_buffers,
    frame_layout,
    npy_buffers,
    read_arrow,
    read_frame,
    read_npy,
    write_arrow,
    write_value,
)
from ..context import CommandContext
from .pulled_parts import DumpFailed, PulledParts
from .session import HOME, STATE_DIR

if TYPE_CHECKING:
    from .session import PythonSession

__all__ = ["PartWriter", "pull_value", "push_value"]

# The most one request uploads: the agent reads a part while the next goes up, and the
# sprite holds about two parts at a time, not the whole value.
PART_SIZE = 64 * 1024 * 1024
SERIALISED_PART = 32 * 1024 * 1024  # what a serialiser fills before it goes up
TAIL_PART = 8 * 1024 * 1024  # the smallest of the parts that end a push


class PartWriter:
    """A write-only file that uploads every ``part_size`` bytes as the next part, then
    announces it (``announce(index, format)``) so the agent reads it at once."""

    def __init__(self, sprite: Sprite, folder: str, announce: Callable[[int, str], object],
                 part_size: int = SERIALISED_PART) -> None:
        self.sprite = sprite
        self.folder = folder
        self.announce = announce
        self.part_size = part_size
        self.kind = ""  # the format being written, told to the agent with each part
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

    def upload_buffers(self, buffers: list[memoryview], part_size: int,
                       smallest: int) -> None:
        """Upload ``buffers`` (back to back) as parts of at most ``part_size`` (the last
        ones down to ``smallest``), sent from their own memory."""
        for part in _split(buffers, part_size, smallest):
            self._put(part)
            self.size += sum(len(piece) for piece in part)

    def _put(self, buffers: list[Any]) -> None:
        self.sprite.write_buffers(f"{self.folder}/{self.parts:06d}", buffers)
        self.announce(self.parts, self.kind)
        self.parts += 1

    def _upload(self) -> None:
        self._put([self._buffer])
        # A new buffer, not a cleared one: the sent part's memory stays exported to
        # httpx's request objects, whose reference cycles the collector frees (now).
        self._buffer = bytearray()
        gc.collect(1)


def _part_sizes(total: int, part_size: int, smallest: int) -> Iterator[int]:
    """Parts of ``part_size``, the last ones halving down to ``smallest`` (a shorter rest
    joins the part before it: each request costs a few ms): the agent reads a part once
    it is whole, so what it still reads after the upload ends is the last part only."""
    remaining = total
    while remaining > 0:
        size = min(part_size, max(smallest, remaining // 2))
        if remaining - size < smallest:
            size = min(remaining, part_size)
        yield size
        remaining -= size


def _split(buffers: list[memoryview], part_size: int,
           smallest: int) -> list[list[memoryview]]:
    """``buffers`` cut into consecutive parts (:func:`_part_sizes`), as views: nothing
    is copied. No bytes at all is one empty part."""
    sizes = _part_sizes(sum(len(buffer.cast("B")) for buffer in buffers), part_size,
                        smallest)
    parts: list[list[memoryview]] = [[]]
    room = next(sizes, 0)
    for buffer in buffers:
        view = buffer.cast("B")
        while view:
            if not room:
                parts.append([])
                room = next(sizes)
            piece = view[:room]
            parts[-1].append(piece)
            room -= len(piece)
            view = view[len(piece):]
    return parts


def _buffers(value: Any, kind: str) -> list[memoryview] | None:
    """The bytes to send for ``value`` as views of memory it already has, when it has
    them in one piece: bytes as they are, a C- or Fortran-contiguous array as its
    ``.npy`` header and its buffer. ``None``: serialise it."""
    if kind == "raw":
        return [memoryview(value)]
    if kind == "npy-frame":
        return frame_buffers(value)
    return npy_buffers(value) if kind == "npy" else None


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


# What the session may lack that moving a value of each kind could use (anything else:
# cloudpickle); bytes always go raw.
_FORMAT_MODULES = {"bytes": (), "numpy": ("numpy",), "pandas": ("numpy", "pandas", "pyarrow")}
# Import names whose pip package is named otherwise.
_PIP_NAMES = {"sklearn": "scikit-learn", "cv2": "opencv-python", "PIL": "pillow",
              "yaml": "pyyaml", "skimage": "scikit-image", "bs4": "beautifulsoup4"}


def _pip_name(module: str) -> str:
    return _PIP_NAMES.get(module, module)


def _session_has(session: PythonSession, value: Any) -> dict[str, bool]:
    """What the session can import; asked again when something moving ``value`` could
    use was missing (so a package installed mid-session is used)."""
    has = session.info.get("has") or {}
    kind = "bytes" if type(value) is bytes else type(value).__module__.split(".")[0]
    if all(has.get(module) for module in _FORMAT_MODULES.get(kind, ("cloudpickle",))):
        return has
    return session.capabilities()


def _push_format(value: Any, remote: dict[str, bool], name: str, python: str,
                 reads: list[str]) -> str:
    module = type(value).__module__.split(".")[0]
    if type(value) is bytes:
        return "raw"
    if module in ("pandas", "numpy") and not remote.get(module):
        raise UsageError(f"Cannot push {name} ({_type_name(value)}): the sprite's {python} "
                         f"cannot import {module}; install it there (%sprite exec {python} "
                         f"-m pip install {module})")
    if module == "numpy" and type(value).__name__ == "ndarray" and value.dtype != object:
        return "npy"
    if type(value).__name__ == "DataFrame" and module == "pandas":
        if "npy-frame" in reads and frame_layout(value) is not None:
            return "npy-frame"
        if remote.get("pyarrow") and _local_has("pyarrow"):
            return "arrow"
    return _pickle_format(remote)


def _pickle_format(remote: dict[str, bool]) -> str:
    return "cloudpickle" if remote.get("cloudpickle") and _local_has("cloudpickle") \
        else "pickle"


def _read(source: PulledParts, kind: str) -> Any:
    """Load a value as the agent writes it: an array or ``bytes`` received straight into
    their own memory, an Arrow stream or a pickle as it loads."""
    if kind == "npy":
        return read_npy(source)
    if kind == "npy-frame":
        return read_frame(source)
    if kind == "arrow":
        return read_arrow(io.BufferedReader(source, 1 << 20))
    if kind in ("pickle", "cloudpickle"):
        return pickle.load(io.BufferedReader(source, 1 << 20))
    return source.readall()


def _dump_failure(done: dict[str, Any], remote: str, sprite: str) -> UsageError:
    ename, evalue = done.get("ename"), done.get("evalue")
    if ename == "NameError":
        return UsageError(f"No variable {remote} in the Python session on sprite {sprite}")
    return UsageError(f"Cannot pull {remote}: a {done.get('type_name') or 'value'} "
                      f"that cannot be serialised ({ename}: {evalue})")


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
    formats += [name for name, module in (("npy", "numpy"), ("arrow", "pyarrow"),
                                          ("cloudpickle", "cloudpickle")) if _local_has(module)]
    if _local_has("numpy") and _local_has("pandas"):
        formats.append("npy-frame")
    return formats


def _upload(value: Any, kind: str, buffers: list[memoryview] | None, writer: PartWriter,
            name: str, fallback: str) -> str:
    """Send ``value`` as ``kind`` (from ``buffers``, its own memory, when it has them), or
    as ``fallback`` when Arrow cannot hold a frame (nothing sent before); the format."""
    writer.kind = kind
    if buffers is not None:
        if kind == "raw":  # one part, which the agent reads into one bytes
            whole = max(1, len(buffers[0]))
            writer.upload_buffers(buffers, whole, whole)
        else:
            writer.upload_buffers(buffers, PART_SIZE, TAIL_PART)
        return kind
    try:
        if kind == "arrow" and write_arrow(value, writer):
            writer.close()
            return kind
        writer.kind = kind = fallback if kind == "arrow" else kind
        write_value(value, kind, writer)
    except (pickle.PicklingError, TypeError, AttributeError, ValueError,
            NotImplementedError) as error:
        raise UsageError(f"Cannot push {name}: a {_type_name(value)} cannot be serialised "
                         f"({error})") from None
    writer.close()
    return kind


def _older_agent(session: PythonSession, name: str, verb: str) -> UsageError | None:
    """The agent of a session started by an older sprites_jupyter moves values another
    way: say how to get one that moves this kernel's."""
    if session.info.get("transfers") == "streamed":
        return None
    return UsageError(f"Cannot {verb} {name}: the Python session on sprite "
                      f"{session.sprite.name} was started by an older sprites_jupyter; "
                      f"restart it (%sprite python stop, then run a cell) and {verb} again")


def push_value(ctx: CommandContext, session: PythonSession, local: str, remote: str) -> None:
    """Send ``local`` from this kernel to ``remote`` in the session (journaled)."""
    sprite = session.sprite
    with ctx.operation(sprite.name, "push", local):
        if local not in ctx.shell.user_ns:
            raise UsageError(f"No variable {local} in this kernel")
        value = ctx.shell.user_ns[local]
        if (older := _older_agent(session, local, "push")) is not None:
            raise older
        remote_has = _session_has(session, value)
        kind = _push_format(value, remote_has, local, session.python,
                            list(session.info.get("reads") or ()))
        buffers = _buffers(value, kind)
        folder = f"{STATE_DIR}/transfer/{uuid.uuid4().hex}"
        started = time.monotonic()
        with session.in_use:
            load = session.request("load", name=remote, dir=folder, size=sum(
                len(buffer) for buffer in buffers) if buffers is not None else -1)
            writer = PartWriter(sprite, f"{HOME}/{folder}", lambda index, sent_as: session.request(
                "part", index=index, format=sent_as), SERIALISED_PART)
            try:
                kind = _upload(value, kind, buffers, writer, local, _pickle_format(remote_has))
            except BaseException:
                with contextlib.suppress(Exception):
                    session.request("abort")
                with contextlib.suppress(Exception):
                    sprite.delete(f"{HOME}/{folder}", recursive=True)
                raise
            session.request("end")
            done = session.wait_done(load)
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
        if (older := _older_agent(session, remote, "pull")) is not None:
            raise older
        folder = f"{STATE_DIR}/transfer/{uuid.uuid4().hex}"
        started = time.monotonic()
        with session.in_use:
            dump = session.request("dump", name=remote, dir=folder, formats=_accepted(),
                                   part_size=PART_SIZE)
            parts = PulledParts(sprite, session, dump, f"{HOME}/{folder}")
            try:
                value = _read(parts, parts.first_format())
                done = parts.finish()
            except BaseException as error:
                parts.close()
                with contextlib.suppress(Exception):
                    parts.end()
                with contextlib.suppress(Exception):
                    sprite.delete(f"{HOME}/{folder}", recursive=True)
                if isinstance(error, DumpFailed):
                    raise _dump_failure(error.done, remote, sprite.name) from None
                if isinstance(error, ImportError | AttributeError | pickle.UnpicklingError
                              | EOFError | ValueError):
                    raise _load_failure(error, remote, parts.type_name) from None
                raise
        if done.get("status") != "ok":
            raise _dump_failure(done, remote, sprite.name)
        ctx.shell.user_ns[local] = value
    print(f"Pulled {remote} ({done.get('type_name')}, {_size(int(done.get('size', 0)))} as "
          f"{done['format']}) into {local} from sprite {sprite.name} in "
          f"{time.monotonic() - started:.1f} s")
