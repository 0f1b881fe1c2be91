"""The agent behind ``%%sprite_python``: a persistent Python interpreter inside a sprite.

Standard library only, Python 3.8+. It runs as one exec session and speaks
newline-delimited JSON: requests on stdin, replies and events on stdout. The user's
code never touches those channels: ``sys.stdout``/``sys.stderr`` (and file
descriptors 1 and 2, so subprocesses too) are captured and sent as ``stream``
events, and descriptor 0 reads ``/dev/null``. Every reply carries the request's
``id``; a client that attaches later skips the replayed lines it does not own.

Requests (``op``): ``hello``, ``run`` (``code``; with ``keep``, a folder, a byte limit
and the cell's first line, its output is also kept there for a new kernel to replay, as
:mod:`cell_runner` keeps an exec cell's), ``vars``, ``status``, ``has``, ``load``
(a pushed value, read while it is uploaded: ``name``, ``dir`` of parts, ``size``; then
the notices of :class:`PartNotices`), ``dump``
(a value to pull, written while it is read: ``name``, ``dir`` of parts, ``part_size``,
``formats`` the client reads; then ``took`` notices, and an ``end`` that may come after
the reply), ``save`` (the
namespace into the sprite, for a checkpoint: :mod:`python_state`), ``resume``
(``session_id``: an ended session's saved namespace), ``exit`` (which also removes
this session's saved namespace: a stopped session is not resumed).
Paths are relative to ``$HOME``, which is where the filesystem API's
``/home/sprite`` lives. SIGINT raises ``KeyboardInterrupt`` in the running cell
only; between cells it is ignored.
"""

from __future__ import annotations

import ast
import base64
import builtins
import importlib.util
import io
import itertools
import json
import linecache
import os
import shutil
import signal
import sys
import time
import traceback
import types
import warnings
from typing import Any

try:
    from . import python_agent_parts as parts
    from . import python_agent_values as values
    from . import python_state as state
    from .cell_runner import KeptOutput
    from .python_agent_io import KeepingChannel, Streams, StreamWriter
    from .python_agent_process import boot_id, record_session, resident_bytes
except ImportError:
    import python_agent_parts as parts  # type: ignore[no-redef]
    import python_agent_values as values  # type: ignore[no-redef]
    import python_state as state  # type: ignore[no-redef]
    from cell_runner import KeptOutput  # type: ignore[no-redef]
    from python_agent_io import (  # type: ignore[no-redef]
        KeepingChannel,
        Streams,
        StreamWriter,
    )
    from python_agent_process import (  # type: ignore[no-redef]
        boot_id,
        record_session,
        resident_bytes,
    )

MIN_PYTHON = (3, 8)
AGENT_FILE = os.path.abspath(__file__)
class Agent:
    """Runs requests one at a time in the main thread, against one namespace."""

    def __init__(self, channel: KeepingChannel, streams: Streams) -> None:
        self.channel = channel
        self.streams = streams
        self.formatter = values.Formatter()
        self.module = types.ModuleType("__main__")
        self.module.__dict__["__builtins__"] = builtins
        sys.modules["__main__"] = self.module
        self.namespace = self.module.__dict__
        self.cells = 0
        self.started = time.time()
        self.in_user_code = False
        self.request_id = None
        self.requests: Any = iter(())
        self.state = state.SessionState("")
        # Parts of the last dump that the client may still be reading after the reply:
        # removed at its ``end`` (or when the next transfer starts).
        self.leftover = ""
        self.after_reply: list = []  # folders removed once the reply is out

    # -- display ---------------------------------------------------------------

    def display(self, *objects: object, **_options: object) -> None:
        for obj in objects:
            data, metadata = self.formatter.bundle(obj)
            self.streams.flush()
            self.channel.send({"type": "display", "id": self.request_id, "data": data,
                               "metadata": metadata})

    def install_display(self) -> None:
        setattr(builtins, "display", self.display)  # noqa: B010  (a new builtin)
        if self.formatter.ipython is not None:
            try:
                import IPython.core.display_functions as functions
                import IPython.display as public
                functions.display = self.display
                public.display = self.display
            except Exception:
                pass

    def flush_figures(self) -> None:
        """Matplotlib figures made in the cell, as PNG (what the inline backend does)."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        if getattr(pyplot.show, "__name__", "") != "flush_figures":
            setattr(pyplot, "show", self.flush_figures)  # noqa: B010  (the session's own)
        for number in pyplot.get_fignums():
            figure = pyplot.figure(number)
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", bbox_inches="tight")
            self.streams.flush()
            self.channel.send({"type": "display", "id": self.request_id,
                               "data": {"image/png": base64.b64encode(buffer.getvalue())
                                        .decode("ascii"), "text/plain": repr(figure)},
                               "metadata": {}})
        pyplot.close("all")

    # -- requests --------------------------------------------------------------

    def serve(self, requests) -> None:
        self.requests = requests
        for line in requests:
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if not isinstance(request, dict):
                continue
            if request.get("op") in parts.NOTICES:
                if request.get("op") == "end":
                    self.drop_leftover()
                continue
            if request.get("op") == "exit":
                self.drop_leftover()
                self.state.discard()
                return
            self.handle(request)

    def handle(self, request: dict) -> None:
        self.request_id = request.get("id")
        self.streams.request_id = self.request_id
        handler = getattr(self, "op_" + str(request.get("op")), None)
        reply = {"type": "done", "id": self.request_id, "status": "ok"}
        try:
            if handler is None:
                raise ValueError(f"unknown request {request.get('op')!r}")
            reply.update(handler(request) or {})
        except KeyboardInterrupt:
            reply.update(status="error", ename="KeyboardInterrupt", evalue="",
                         traceback=[])
        except Exception as error:
            reply.update(status="error", ename=type(error).__name__, evalue=str(error),
                         traceback=[], type_name=getattr(error, "type_name", ""))
        self.streams.drain()
        self.channel.send(reply)
        self.streams.request_id = None
        while self.after_reply:
            shutil.rmtree(self.after_reply.pop(), ignore_errors=True)

    def drop_leftover(self) -> None:
        if self.leftover:
            shutil.rmtree(self.leftover, ignore_errors=True)
            self.leftover = ""

    def op_hello(self, request: dict) -> dict:
        session = request.get("session_id")
        if session and self.state.session_id != str(session):
            record_session(str(session), self.started)
            self.state = state.SessionState(str(session))
        return {"pid": os.getpid(), "started": self.started, "boot_id": boot_id(),
                "python": sys.version.split()[0], "executable": sys.executable,
                "has": capabilities(), "transfers": "streamed",
                "reads": list(values.READS)}

    def op_has(self, request: dict) -> dict:
        """What the session can import now (a package installed mid-session counts)."""
        importlib.invalidate_caches()
        return {"value": capabilities()}

    def op_run(self, request: dict) -> dict:
        self.cells += 1
        filename = f"<sprite cell {self.cells}>"
        code = str(request.get("code", ""))
        keep = request.get("keep")
        if isinstance(keep, dict):
            self.keep_output(keep)
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        try:
            value, show = self.execute(code, filename)
        except BaseException as error:
            self.flush_figures()
            return {"status": "error", "ename": type(error).__name__,
                    "evalue": str(error), "traceback": user_traceback(error)}
        if show and value is not None:
            self.namespace["_"] = value
            if not self.is_open_figure(value):
                self.display(value)
        self.flush_figures()
        return {}

    def keep_output(self, keep: dict) -> None:
        """Keep this cell's output in its folder too; a cell whose output cannot be kept
        still runs, and says so on its stderr."""
        folder = os.path.join(os.environ.get("HOME", "."), str(keep["dir"]))
        try:
            kept = KeptOutput(folder, int(keep["limit"]), {
                "kind": "python", "first_line": str(keep.get("first_line", "")),
                "session": self.state.session_id})
        except OSError as error:
            sys.stderr.write(f"[this cell's output is not kept on the sprite: {error}]\n")
            return
        self.channel.keep(self.request_id, kept)

    @staticmethod
    def is_open_figure(value) -> bool:
        """Whether ``value`` is a pyplot figure still open, which :meth:`flush_figures`
        shows as its picture (displaying it too would add ``<Figure size …>``)."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        number = getattr(value, "number", None)
        return (pyplot is not None and type(value).__name__ == "Figure"
                and number in pyplot.get_fignums())

    def execute(self, code: str, filename: str) -> tuple:
        tree = ast.parse(code, filename, "exec")
        last = None
        if tree.body and isinstance(final := tree.body[-1], ast.Expr):
            tree.body.pop()
            last = ast.Expression(final.value)
        body = compile(tree, filename, "exec")
        tail = compile(last, filename, "eval") if last is not None else None
        self.in_user_code = True
        try:
            exec(body, self.namespace)
            value = eval(tail, self.namespace) if tail is not None else None
        finally:
            self.in_user_code = False
        return value, not code.rstrip().endswith(";")

    def op_vars(self, request: dict) -> dict:
        rows = []
        for name, value in list(self.namespace.items()):
            if name.startswith("_") or isinstance(value, types.ModuleType):
                continue
            try:
                info = repr(value)
            except Exception:
                info = object.__repr__(value)
            rows.append({"name": name, "type": values.describe_type(value),
                         "size": values.describe_size(value),
                         "info": info if len(info) <= 60 else info[:59] + "…"})
        return {"value": rows}

    def op_status(self, request: dict) -> dict:
        return {"value": {"pid": os.getpid(), "started": self.started,
                          "memory": resident_bytes(), "cells": self.cells,
                          "python": sys.version.split()[0]}}

    def op_save(self, request: dict) -> dict:
        self.in_user_code = True
        try:
            return {"value": self.state.save(self.namespace, sys.version.split()[0])}
        finally:
            self.in_user_code = False

    def op_resume(self, request: dict) -> dict:
        folder = os.path.join(state.state_root(), str(request["session_id"]))
        self.in_user_code = True
        try:
            return {"value": self.state.resume(folder, self.namespace)}
        finally:
            self.in_user_code = False

    def op_load(self, request: dict) -> dict:
        """Read a pushed value while it is uploaded: the client announces each part once
        it is whole (``part``: ``index``, the first also ``format``), then ``end`` or
        ``abort``; each part is removed once read, so the sprite holds about two (the
        last once the reply is out; all of them before the reply of a failed push)."""
        self.drop_leftover()
        name = str(request["name"])
        folder = os.path.join(os.environ.get("HOME", "."), str(request["dir"]))
        notices = parts.PartNotices(self.requests)
        try:
            first = next(notices.parts(), None)
            if first is None:
                raise ValueError("the push ended before its first part")
            pushed = parts.Parts(folder, itertools.chain([first], notices.parts()))
            try:
                self.in_user_code = True
                try:
                    value = values.read_value(pushed, notices.format, int(request["size"]))
                finally:
                    self.in_user_code = False
            finally:
                pushed.close()
        except BaseException:
            notices.drain()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        notices.drain()  # parts the value did not need
        self.after_reply.append(folder)
        self.namespace[name] = value
        return {"type_name": values.describe_type(value)}

    def op_dump(self, request: dict) -> dict:
        """Write a value to pull as parts of ``part_size`` under ``dir``, announcing each
        as a ``part`` event (with its ``format`` and whether it is the ``last``); at
        most ``PARTS_AHEAD`` wait for the client's ``took`` (which removes one). The
        reply follows the last part at once, the client reading on: its ``end``
        removes what is left (:meth:`drop_leftover`)."""
        self.drop_leftover()
        name = str(request["name"])
        if name not in self.namespace:
            raise NameError(f"name '{name}' is not defined on the sprite")
        value = self.namespace[name]
        folder = os.path.join(os.environ.get("HOME", "."), str(request["dir"]))
        accepted = list(request.get("formats") or ())
        chosen = {"format": values.choose_format(value, accepted)}
        notices = parts.PartNotices(self.requests)

        def finished(index: int, last: bool) -> None:
            self.channel.send({"type": "part", "id": self.request_id, "index": index,
                               "last": last, "format": chosen["format"],
                               "type_name": values.describe_type(value)})
            if not last:
                notices.wait_taken(folder, index + 1 - parts.PARTS_AHEAD)

        part_size = int(request["part_size"])
        if chosen["format"] == "raw":  # one part: the client reads it into one bytes
            part_size = max(part_size, len(value))
        files = parts.PartFiles(folder, part_size, finished)
        self.in_user_code = True
        try:
            if chosen["format"] == "arrow" and not values.write_arrow(value, files):
                chosen["format"] = values.pickle_format(accepted)  # nothing written yet
            if chosen["format"] != "arrow":
                values.write_value(value, chosen["format"], files)
            files.close()
        except BaseException as error:
            setattr(error, "type_name", values.describe_type(value))  # noqa: B010
            files.discard()
            shutil.rmtree(folder, ignore_errors=True)
            raise
        finally:
            self.in_user_code = False
        self.leftover = folder
        return {"format": chosen["format"], "size": files.size,
                "type_name": values.describe_type(value)}


def capabilities() -> dict:
    return {name: importlib.util.find_spec(name) is not None
            for name in ("numpy", "pandas", "pyarrow", "cloudpickle", "IPython", "matplotlib")}


def user_traceback(error: BaseException) -> list:
    """The traceback without the agent's own frames."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == AGENT_FILE:
        tb = tb.tb_next
    if isinstance(error, SyntaxError):
        return traceback.format_exception_only(type(error), error)
    return traceback.format_exception(type(error), error, tb)


def main() -> None:
    if sys.version_info < MIN_PYTHON:
        sys.stderr.write("sprite_python needs python3 3.8 or newer on the sprite\n")
        sys.exit(3)
    if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(AGENT_FILE):
        sys.path[0] = ""
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore", message=".*non-interactive.*cannot be shown")
    requests = os.fdopen(os.dup(0), "rb")
    channel = KeepingChannel(os.dup(1))
    quiet = os.open(os.devnull, os.O_RDONLY)
    os.dup2(quiet, 0)
    os.close(quiet)
    streams = Streams(channel)
    streams.capture_descriptors()
    sys.stdin = io.StringIO("")
    sys.stdout = StreamWriter(streams, "stdout")
    sys.stderr = StreamWriter(streams, "stderr")
    agent = Agent(channel, streams)
    agent.install_display()

    def interrupt(signum, frame):
        if agent.in_user_code:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    agent.serve(requests)
    streams.flush()


if __name__ == "__main__":
    main()
