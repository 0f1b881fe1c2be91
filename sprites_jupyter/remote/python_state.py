"""The ``%%sprite_python`` namespace saved inside the sprite, so a checkpoint holds it.

Standard library only, Python 3.8+; uploaded beside ``python_agent.py``. A session
saves to ``$HOME/.sprites_jupyter/state/v1/<session id>/`` (format 1)::

    manifest.json            written last, atomically: what the folder holds
    objects/<key>.pickle     one pickle per saved value: its bytes' sha256, or
                             ``new-<random>`` for an immutable value (see below)

``manifest.json`` has ``format``, ``session_id``, ``python`` (the version that
wrote it), ``saved_at`` (Unix seconds; a save that changes nothing leaves the folder
untouched), ``variables`` (in namespace order: each
``name``, ``type``, ``size``, ``bytes`` and ``object``, or ``alias`` naming an
earlier variable holding the same object), ``modules`` (``{name: module}``, imports
are restored by importing) and ``unsaveable`` (``{name: type}``).

Incremental: a variable still bound to the very object saved last time, whose
value is immutable all the way down (numbers, strings, bytes, tuples and
frozensets of those), is not pickled again: the session keeps a reference to it,
so its identity cannot be reused by another object. A new immutable value is
pickled straight to a file of its own (no hashing: it is new by identity). A
mutable value is pickled again at every save while its bytes are hashed; a hash
already stored costs no new file. A change is never missed: mutable values are
always re-read. (Code pickled by value can differ byte-wise between saves of the
same function; that costs a rewrite, never a miss.)

Sharing: an object held by a variable and reached from a later variable is
stored once, as a reference to the earlier variable, and is the same object after
loading. Objects shared only below the top level are copied per variable.
Functions and classes defined in cells are stored by value (code, defaults,
closure), so instances of a cell's class load without the cell running again.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import marshal
import os
import pickle
import sys
import time
import types
from typing import Any

try:
    from .python_agent_values import describe_size, describe_type
except ImportError:
    from python_agent_values import describe_size, describe_type  # type: ignore[no-redef]

FORMAT = 1
STATE_DIR = os.path.join(".sprites_jupyter", "state", "v1")
MANIFEST = "manifest.json"
CHUNK = 8 * 1024 * 1024
ATOMS = (int, float, complex, str, bytes, bool, type(None), range)


def state_root() -> str:
    return os.path.join(os.environ.get("HOME", "."), STATE_DIR)


def immutable(value: Any, depth: int = 0) -> bool:
    """Immutable all the way down (bounded: a deep or large tuple counts as mutable)."""
    if type(value) in ATOMS:
        return True
    if type(value) in (tuple, frozenset) and depth < 4 and len(value) <= 1000:
        return all(immutable(item, depth + 1) for item in value)
    return False


class HashingFile:
    """A file that hashes what is written to it."""

    def __init__(self, target) -> None:
        self.target = target
        self.digest = hashlib.sha256()

    def write(self, data) -> int:
        self.digest.update(data)
        return self.target.write(data)


def make_function(code: bytes, name: str, qualname: str, cells: int) -> types.FunctionType:
    """A cell's function with empty closure cells (its state fills them)."""
    namespace = sys.modules["__main__"].__dict__
    closure = tuple(types.CellType() for _ in range(cells)) or None
    function = types.FunctionType(marshal.loads(code), namespace, name, None, closure)
    function.__qualname__ = qualname
    return function


def set_function_state(function: types.FunctionType, state: tuple) -> types.FunctionType:
    defaults, kwdefaults, contents, attributes = state
    function.__defaults__ = defaults
    function.__kwdefaults__ = kwdefaults
    for cell, (filled, value) in zip(function.__closure__ or (), contents):
        if filled:
            cell.cell_contents = value
    function.__dict__.update(attributes)
    return function


def make_class(metaclass: type, name: str, bases: tuple, skeleton: dict) -> type:
    return metaclass(name, bases, dict(skeleton))


def set_class_state(cls: type, state: dict) -> type:
    for key, value in state.items():
        setattr(cls, key, value)
    return cls


def _cell_contents(function: types.FunctionType) -> list:
    contents = []
    for cell in function.__closure__ or ():
        try:
            contents.append((True, cell.cell_contents))
        except ValueError:
            contents.append((False, None))
    return contents


_SKELETON_KEYS = ("__module__", "__qualname__", "__slots__", "__doc__")


class StatePickler(pickle.Pickler):
    """Pickles one variable: earlier variables by reference, cell code by value."""

    def __init__(self, file, root: object, earlier: dict) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.root = root
        self.earlier = earlier

    def persistent_id(self, obj: Any) -> Any:
        name = self.earlier.get(id(obj))
        if name is None or obj is self.root or type(obj) in ATOMS:
            return None
        return name

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is types.FunctionType and obj.__module__ == "__main__":
            cells = len(obj.__closure__ or ())
            state = (obj.__defaults__, obj.__kwdefaults__, _cell_contents(obj), obj.__dict__)
            return (make_function, (marshal.dumps(obj.__code__), obj.__name__,
                                    obj.__qualname__, cells), state, None, None,
                    set_function_state)
        if isinstance(obj, type) and obj.__module__ == "__main__":
            members = dict(vars(obj))
            skeleton = {key: members.pop(key) for key in _SKELETON_KEYS if key in members}
            for key in ("__dict__", "__weakref__", *(skeleton.get("__slots__") or ())):
                members.pop(key, None)
            return (make_class, (type(obj), obj.__name__, obj.__bases__, skeleton), members,
                    None, None, set_class_state)
        if kind in (staticmethod, classmethod):
            return kind, (obj.__func__,)
        if kind is property:
            return property, (obj.fget, obj.fset, obj.fdel, obj.__doc__)
        return NotImplemented


class StateUnpickler(pickle.Unpickler):
    def __init__(self, file, namespace: dict) -> None:
        super().__init__(file)
        self.namespace = namespace

    def persistent_load(self, pid):
        if pid not in self.namespace:
            raise pickle.UnpicklingError(f"it refers to {pid}, which was not restored")
        return self.namespace[pid]


class SessionState:
    """One session's saved namespace: what was saved last, to save only what changed."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.folder = os.path.join(state_root(), session_id or "unnamed")
        self.saved: dict = {}  # name -> (the object saved, its manifest entry)
        self.contents: dict | None = None  # what the last manifest holds, but its time

    def save(self, namespace: dict, python: str) -> dict:
        objects = os.path.join(self.folder, "objects")
        os.makedirs(objects, exist_ok=True)
        started = time.monotonic()
        entries: list = []
        modules: dict = {}
        unsaveable: dict = {}
        earlier: dict = {}
        saved: dict = {}
        written, written_bytes = 0, 0
        for name, value in list(namespace.items()):
            if name.startswith("_"):
                continue
            if isinstance(value, types.ModuleType):
                modules[name] = value.__name__
                continue
            if id(value) in earlier:
                entries.append({"name": name, "alias": earlier[id(value)]})
                continue
            previous = self.saved.get(name)
            if previous is not None and previous[0] is value and immutable(value):
                entry = previous[1]
            else:
                try:
                    entry, size = self._write(objects, name, value, earlier)
                except Exception:
                    unsaveable[name] = describe_type(value)
                    continue
                if size is not None:
                    written += 1
                    written_bytes += size
            entries.append(entry)
            saved[name] = (value, entry)
            earlier[id(value)] = name
        contents = {"variables": entries, "modules": modules, "unsaveable": unsaveable}
        if contents != self.contents or not os.path.exists(os.path.join(self.folder, MANIFEST)):
            # Unchanged, the folder is left as it is: the checkpoint has nothing new to take.
            manifest = {"format": FORMAT, "session_id": self.session_id, "python": python,
                        "saved_at": time.time(), **contents}
            temporary = os.path.join(self.folder, MANIFEST + ".tmp")
            with open(temporary, "w") as target:
                json.dump(manifest, target)
            os.replace(temporary, os.path.join(self.folder, MANIFEST))
            self.contents = contents
        kept = {entry["object"] + ".pickle" for entry in entries if "object" in entry}
        for leftover in os.listdir(objects):
            if leftover not in kept:
                os.remove(os.path.join(objects, leftover))
        self.saved = saved
        return {"variables": len(entries), "written": written, "bytes": written_bytes,
                "modules": len(modules), "unsaveable": unsaveable,
                "seconds": time.monotonic() - started}

    @staticmethod
    def _write(objects: str, name: str, value: Any, earlier: dict) -> tuple:
        """The value's manifest entry, and the bytes written (None: already stored)."""
        temporary = os.path.join(objects, f".{name}.tmp")
        try:
            with open(temporary, "wb") as target:
                sink = None if immutable(value) else HashingFile(target)
                StatePickler(sink or target, value, earlier).dump(value)
                size = target.tell()
        except BaseException:
            os.remove(temporary)
            raise
        key = sink.digest.hexdigest() if sink is not None else "new-" + os.urandom(16).hex()
        entry = {"name": name, "type": describe_type(value), "size": describe_size(value),
                 "bytes": size, "object": key}
        final = os.path.join(objects, key + ".pickle")
        if os.path.exists(final):
            os.remove(temporary)
            return entry, None
        os.replace(temporary, final)
        return entry, size

    def resume(self, folder: str, namespace: dict) -> dict:
        """Load another (ended) session's saved namespace and adopt its folder."""
        with open(os.path.join(folder, MANIFEST)) as source:
            manifest = json.load(source)
        if manifest.get("format") != FORMAT:
            raise ValueError(f"saved state format {manifest.get('format')} is not {FORMAT}")
        failed = dict(manifest.get("unsaveable") or {})
        for name, module in (manifest.get("modules") or {}).items():
            try:
                namespace[name] = importlib.import_module(module)
            except Exception as error:
                failed[name] = f"module {module}: {type(error).__name__}"
        saved, restored = {}, 0
        for entry in manifest.get("variables") or []:
            name = entry["name"]
            try:
                if "alias" in entry:
                    value = namespace[entry["alias"]]
                else:
                    path = os.path.join(folder, "objects", entry["object"] + ".pickle")
                    with open(path, "rb") as source:
                        value = StateUnpickler(source, namespace).load()
                    saved[name] = (value, entry)
            except Exception as error:
                failed[name] = f"{entry.get('type', 'value')}: {type(error).__name__}: {error}"
                continue
            namespace[name] = value
            restored += 1
        if os.path.abspath(folder) != os.path.abspath(self.folder):
            if os.path.exists(self.folder):
                import shutil
                shutil.rmtree(self.folder)
            os.replace(folder, self.folder)
        self.saved = saved
        return {"restored": restored, "not_restorable": failed,
                "saved_at": manifest.get("saved_at"), "python": manifest.get("python")}

    def discard(self) -> None:
        import shutil
        shutil.rmtree(self.folder, ignore_errors=True)
