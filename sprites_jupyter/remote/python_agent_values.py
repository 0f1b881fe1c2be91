"""Values for the ``%%sprite_python`` agent: MIME bundles to display, bytes to move.

Standard library only, Python 3.8+; uploaded beside ``python_agent.py``. Display
uses IPython's formatter when the sprite has IPython, its own ``_repr_*_`` walk
otherwise. Push and pull use bytes raw, ``.npy``, a DataFrame that is one numeric
array under labels as that array (``npy-frame``), other DataFrames as an Arrow IPC
stream, anything else by pickle, moved in parts (:mod:`python_agent_parts`).
"""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import pickle
import pprint
from typing import Any

COPY_CHUNK = 8 * 1024 * 1024
READS = ("raw", "npy", "npy-frame", "arrow", "pickle", "cloudpickle")  # told at hello
FRAME_KINDS = "biufc"  # numpy's bool, integer, float and complex dtypes
REPR_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("text/latex", "_repr_latex_"),
    ("application/json", "_repr_json_"),
)


def _json_safe(data: dict) -> dict:
    safe = {}
    for mime, value in data.items():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif mime.startswith("image/") and mime != "image/svg+xml" and isinstance(value, str):
            value = value.strip()
        safe[mime] = value
    return safe


class Formatter:
    """MIME bundles for objects: IPython's formatter when the sprite has IPython."""

    def __init__(self) -> None:
        self.ipython = None
        if importlib.util.find_spec("IPython") is not None:
            try:
                from IPython.core.formatters import DisplayFormatter
                self.ipython = DisplayFormatter()
            except Exception:
                self.ipython = None

    def bundle(self, obj: object) -> tuple:
        if self.ipython is not None:
            try:
                data, metadata = self.ipython.format(obj)
                if "text/plain" in data:
                    return _json_safe(data), metadata
            except Exception:
                pass
        return self._own(obj)

    def _own(self, obj: object) -> tuple:
        data: dict = {}
        metadata: dict = {}
        if not isinstance(obj, type):
            method = getattr(obj, "_repr_mimebundle_", None)
            if callable(method):
                found = _call(method, include=None, exclude=None)
                if isinstance(found, tuple) and len(found) == 2:
                    found, metadata = found
                if isinstance(found, dict):
                    data.update(found)
            for mime, name in REPR_METHODS:
                method = getattr(obj, name, None)
                if mime in data or not callable(method):
                    continue
                found = _call(method)
                if isinstance(found, tuple) and len(found) == 2:
                    found, metadata[mime] = found
                if found is not None:
                    data[mime] = found
        if "text/plain" not in data:
            try:
                data["text/plain"] = pprint.pformat(obj, width=79, compact=True)
            except Exception:
                data["text/plain"] = object.__repr__(obj)
        return _json_safe(data), metadata or {}


def _call(method, **kwargs):
    try:
        return method(**kwargs)
    except Exception:
        return None


def describe_type(value: object) -> str:
    kind = type(value)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def describe_size(value: Any) -> str:
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):
        return " x ".join(str(n) for n in shape) or "scalar"
    try:
        return f"{len(value)} items" if not isinstance(value, (str, bytes)) else f"{len(value)}"
    except Exception:
        return ""


def choose_format(value: Any, accepted: list) -> str:
    module = type(value).__module__.split(".")[0]
    if type(value) is bytes and "raw" in accepted:
        return "raw"
    if (module == "numpy" and type(value).__name__ == "ndarray" and "npy" in accepted
            and value.dtype != object):
        return "npy"
    if module == "pandas" and type(value).__name__ == "DataFrame":
        if "npy-frame" in accepted and frame_layout(value) is not None:
            return "npy-frame"
        if "arrow" in accepted and importlib.util.find_spec("pyarrow") is not None:
            return "arrow"
    return pickle_format(accepted)


def pickle_format(accepted: list) -> str:
    """cloudpickle when both sides have it, else pickle."""
    if "cloudpickle" in accepted and importlib.util.find_spec("cloudpickle") is not None:
        return "cloudpickle"
    return "pickle"


def npy_buffers(array: Any) -> Any:
    """An array's ``.npy`` bytes as views of memory it already has (its header, then its
    buffer) when it is C- or Fortran-contiguous; ``None`` otherwise (and for record
    arrays, which keep numpy's own header versions)."""
    if array.dtype.names is not None or array.dtype.hasobject:
        return None
    import numpy
    from numpy.lib import format as npy

    if array.flags.c_contiguous:
        data = array.reshape(-1)
    elif array.flags.f_contiguous:
        data = array.T.reshape(-1)
    else:
        return None
    header = io.BytesIO()
    fields = npy.header_data_from_array_1_0(array)
    try:
        npy.write_array_header_1_0(header, fields)
    except ValueError:  # a shape too long for a 1.0 header
        header = io.BytesIO()
        npy.write_array_header_2_0(header, fields)
    return [header.getbuffer(), data.view(numpy.uint8).data]


def frame_layout(frame: Any) -> Any:
    """``(header, values)`` for a DataFrame that is one numeric array under labels
    (every column the same numpy dtype, unique string labels, a ``RangeIndex``), else
    ``None``. Its values are the frame's own memory when pandas holds them in one block
    (Arrow would gather each column into a copy first), and the other side rebuilds the
    frame around the array it received, without a copy."""
    import numpy
    import pandas

    columns, index = frame.columns, frame.index
    dtypes = set(frame.dtypes)
    if (len(dtypes) != 1 or type(index) is not pandas.RangeIndex or frame.attrs
            or type(columns) is not pandas.Index or not columns.is_unique):
        return None
    dtype = dtypes.pop()
    labels = list(columns)
    if (not isinstance(dtype, numpy.dtype) or dtype.kind not in FRAME_KINDS
            or not all(type(label) is str for label in labels)
            or not all(name is None or type(name) is str
                       for name in (columns.name, index.name))
            or pandas.Index(labels).dtype != columns.dtype):
        return None
    header = {"columns": labels, "columns_name": columns.name, "index_name": index.name,
              "index": [index.start, index.stop, index.step]}
    return header, frame.to_numpy(copy=False)


def _frame_head(header: dict) -> bytes:
    data = json.dumps(header).encode()
    return len(data).to_bytes(4, "little") + data


def frame_buffers(frame: Any) -> Any:
    """An ``npy-frame`` as views of memory the frame already has (after its header);
    ``None`` when its values are not in one contiguous piece."""
    header, values = frame_layout(frame)
    buffers = npy_buffers(values)
    return None if buffers is None else [memoryview(_frame_head(header)), *buffers]


def read_frame(stream: Any) -> Any:
    """A DataFrame from an ``npy-frame`` stream (a raw stream with ``readinto``)."""
    import pandas

    size = int.from_bytes(_read_exactly(stream, 4), "little")
    header = json.loads(_read_exactly(stream, size))
    values = read_npy(stream)
    return pandas.DataFrame(
        values, columns=pandas.Index(header["columns"], name=header["columns_name"]),
        index=pandas.RangeIndex(*header["index"], name=header["index_name"]), copy=False)


def _read_exactly(stream: Any, count: int) -> bytes:
    data = bytearray(count)
    _fill(stream, memoryview(data), "the frame's header")
    return bytes(data)


def _fill(stream: Any, view: Any, what: str) -> None:
    """Fill ``view`` by ``stream.readinto``; EOFError naming ``what`` if it ends first."""
    filled = 0
    while filled < len(view):
        got = stream.readinto(view[filled:])
        if not got:
            raise EOFError(f"{what} ended after {filled:,} of {len(view):,} bytes")
        filled += got


def write_value(value: Any, kind: str, target, fallback: str = "pickle") -> str:
    """Write ``value`` as ``kind``; the format written: a DataFrame Arrow cannot hold
    (say an object column of mixed types) goes as ``fallback``, nothing written before."""
    if kind == "arrow":
        if write_arrow(value, target):
            return kind
        kind = fallback
    if kind == "npy-frame":
        header, value = frame_layout(value)
        target.write(_frame_head(header))
    if kind == "raw":
        target.write(value)
    elif kind in ("npy", "npy-frame"):
        buffers = npy_buffers(value)
        if buffers is None:
            import numpy
            numpy.save(target, value, allow_pickle=False)
        for buffer in buffers or ():
            target.write(buffer)  # the array's own memory, never copied first
    elif kind == "cloudpickle":
        import cloudpickle
        cloudpickle.dump(value, target, protocol=pickle.HIGHEST_PROTOCOL)
    else:
        pickle.dump(value, target, protocol=pickle.HIGHEST_PROTOCOL)
    return kind


def write_arrow(frame: Any, target: Any) -> bool:
    """A DataFrame as an Arrow IPC stream: its columns' memory written as it is (Parquet
    encodes and compresses every value, ~7x the CPU), read back without seeking. False,
    with nothing written, when Arrow cannot hold its columns."""
    import pyarrow

    try:
        table = pyarrow.Table.from_pandas(frame)
    except pyarrow.ArrowException:
        return False
    with pyarrow.ipc.new_stream(target, table.schema) as writer:
        writer.write_table(table)
    return True


def read_arrow(stream: Any) -> Any:
    """A DataFrame from an Arrow IPC stream (a readable file object), index and dtypes
    as they were (pandas metadata travels in the schema)."""
    import pyarrow

    return pyarrow.ipc.open_stream(stream).read_pandas()


def read_npy(stream: Any) -> Any:
    """An ``.npy`` stream (a raw stream with ``readinto``) as an array, its data read
    once, straight into the array's own memory, in reads as large as the stream gives
    (``numpy.lib.format.read_array`` reads a stream in 256 KB pieces copied twice)."""
    import numpy
    from numpy.lib import format as npy

    buffered = io.BufferedReader(stream, 1 << 16)  # large reads go past its buffer
    header_readers = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}
    magic = buffered.peek(npy.MAGIC_LEN)[:npy.MAGIC_LEN]
    version = npy.read_magic(io.BytesIO(magic)) if len(magic) == npy.MAGIC_LEN else None
    if version not in header_readers:  # another version, or a header that came in pieces
        return npy.read_array(buffered, allow_pickle=False)
    npy.read_magic(buffered)
    shape, fortran_order, dtype = header_readers[version](buffered)
    if dtype.hasobject:
        raise ValueError("the array holds Python objects, which .npy does not carry")
    count = 1
    for length in shape:
        count *= length
    flat = numpy.empty(count, dtype=dtype)
    _fill(buffered, flat.view(numpy.uint8).data, "the array")
    if fortran_order:
        return flat.reshape(shape[::-1]).transpose()
    return flat.reshape(shape)


def read_value(parts: Any, kind: str, size: int) -> object:
    """The value in ``parts`` (a :class:`python_agent_parts.Parts`; ``size``: their
    total, where known; -1 otherwise)."""
    if kind == "raw":
        return parts.whole_bytes(size)
    if kind == "npy":
        return read_npy(parts)
    if kind == "npy-frame":
        return read_frame(parts)
    if kind == "arrow":
        return read_arrow(io.BufferedReader(parts, COPY_CHUNK))
    return pickle.load(io.BufferedReader(parts, COPY_CHUNK))
