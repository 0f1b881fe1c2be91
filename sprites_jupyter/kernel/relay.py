"""The provisioner's end of a sprite kernel's checkpoint channel.

The provisioner opens an exec session in the sprite running
:mod:`sprites_jupyter.remote.kernel_relay`; the kernel's ``%sprite`` magics send their
API requests to it, and they arrive here as lines on that session's stdout. Here they
are checked (only this kernel's own sprite, only checkpoints: take, list, look up,
restore) and performed with the provisioner's credentials, so the sprite never holds a
token. A restore stops every process in the sprite, this kernel among them: the kernel
is told so in one line before the restore starts, and the provisioner, told when it
begins and ends, starts the kernel again on the restored sprite.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from typing import Any

import httpx

from ..client import Command, Sprite, SpritesError

HOME = "/home/sprite"
RUNTIME_DIR = ".sprites-jupyter/runtime"  # under HOME, where the kernel starts
SCRIPT_NAME = "kernel_relay.py"
REOPEN_FOR = 60.0  # an old end still holds the address for a while after a drop
REOPEN_PAUSE = 1.0
START_RETRY_FOR = 15.0  # a killed end frees the address at once; a cut-off one later
RESTORE_DELAY = 1.0  # lets the kernel finish the cell before the restore stops it
RESTORE_NOTICE = ("this kernel stops in a moment and comes back on the restored sprite "
                  "(its variables are gone)")
API_TIMEOUT = httpx.Timeout(600.0, connect=10.0)
_ID = r"[A-Za-z0-9._-]+"
_CHUNK = 64 * 1024


def api_access() -> tuple[str, str]:
    """The API's URL and token, from where :func:`~sprites_jupyter.backend.client_from_env`
    takes them (the relay speaks raw HTTP with them, passing responses on unread)."""
    token = os.environ.get("SPRITES_TOKEN") or os.environ.get("SPRITE_TOKEN")
    if token:
        return os.environ.get("SPRITES_API_URL") or "https://api.sprites.dev", token
    from ..local.launcher import LaunchError, ensure_server

    try:
        server = ensure_server()
    except LaunchError as error:
        raise SpritesError(str(error)) from None
    return server.url, server.token


class CheckpointRelay:
    """Performs the checkpoint requests of the kernel in sprite ``sprite_name``."""

    def __init__(self, sprite_name: str, log: logging.Logger, *,
                 restoring: Callable[[], None], restored: Callable[[], None]) -> None:
        """``restoring()`` is called as a relayed restore begins, ``restored()`` once it
        has ended (however it went)."""
        self.sprite_name = sprite_name
        self.log = log
        self._restoring = restoring
        self._restored = restored
        url, token = api_access()
        self._http = httpx.Client(base_url=url, timeout=API_TIMEOUT,
                                  headers={"Authorization": f"Bearer {token}"})
        own = f"/v1/sprites/{re.escape(sprite_name)}"
        self._allowed = [("GET", re.compile(own)),
                         ("GET", re.compile(own + rf"/checkpoints(/{_ID})?")),
                         ("POST", re.compile(own + "/checkpoint"))]
        self._restore = re.compile(own + rf"/checkpoints/({_ID})/restore")
        self._command: Command | None = None
        self._write_lock = threading.Lock()
        self._restores = 0
        self._idle = threading.Condition()
        self._generation = 0  # which start() the serving thread belongs to
        self._lock = threading.Lock()  # one in-sprite end at a time

    def start(self, sprite: Sprite, python: str, address: str, key: str) -> None:
        """Start the in-sprite end, listening on the abstract socket ``address`` for
        requests that carry ``key``; reopened should its connection drop. Raises
        :class:`SpritesError` when it cannot be started."""
        how = (sprite, python, address, key)
        generation = self.stop()
        lines = self._open_until(generation, how, START_RETRY_FOR)
        if lines is None:
            return  # stopped meanwhile
        threading.Thread(target=self._serve, args=(lines, generation, how), daemon=True,
                         name=f"sprite kernel relay {sprite.name}").start()

    def stop(self) -> int:
        """Stop the in-sprite end (a restarted kernel gets a new one); the generation
        that a start from now on belongs to."""
        with self._lock:
            self._generation += 1
            command, self._command = self._command, None
        if command is not None:
            with contextlib.suppress(SpritesError, OSError):
                command.kill()  # not close(): its reading thread owns the receiving side
            command.detach()
        return self._generation

    def _open_until(self, generation: int, how: tuple[Sprite, str, str, str],
                    seconds: float) -> Iterator[Any] | None:
        """Open the in-sprite end, trying again while an old one still holds the
        address; None once a later start or a stop has taken over."""
        deadline = time.monotonic() + seconds
        while True:
            with self._lock:
                if generation != self._generation:
                    return None
                try:
                    return self._open(*how)
                except (SpritesError, OSError) as error:
                    if time.monotonic() > deadline:
                        raise SpritesError(str(error)) from None
            time.sleep(REOPEN_PAUSE)

    def _open(self, sprite: Sprite, python: str, address: str, key: str) -> Iterator[Any]:
        script = f"{RUNTIME_DIR}/{SCRIPT_NAME}"
        source = resources.files("sprites_jupyter.remote").joinpath(SCRIPT_NAME).read_bytes()
        sprite.write_file(f"{HOME}/{script}", source, mode="0600")
        command = sprite.command(python, "-u", script, address, dir=HOME, stdin=True)
        self._command = command
        command.write(json.dumps({"key": key}) + "\n")
        lines = self._lines(command)
        ready = next(lines, None)
        if ready is None or "ready" not in ready:
            command.detach()
            raise SpritesError(f"the checkpoint relay did not start in {sprite.name}")
        return lines

    def _serve(self, lines: Iterator[Any], generation: int,
               how: tuple[Sprite, str, str, str]) -> None:
        while True:
            for request in lines:
                threading.Thread(target=self._handle, args=(request,), daemon=True).start()
            if generation != self._generation:
                return  # stopped on purpose
            self.log.info("Sprite %s: the checkpoint relay's connection dropped; "
                          "reopening it", self.sprite_name)
            try:
                reopened = self._open_until(generation, how, REOPEN_FOR)
            except SpritesError:
                self.log.warning("Sprite %s: no checkpoint relay for the kernel until it "
                                 "restarts", self.sprite_name)
                return
            if reopened is None:
                return
            lines = reopened

    def close(self) -> None:
        self.stop()
        self._http.close()

    def wait_idle(self, timeout: float) -> None:
        """Wait for a restore in progress to finish (the sprite is being replaced)."""
        with self._idle:
            self._idle.wait_for(lambda: self._restores == 0, timeout)

    def _lines(self, command: Command) -> Iterator[Any]:
        pending = b""
        try:
            for chunk in command:
                if chunk.stream != "stdout":
                    self.log.info("[sprite %s relay] %s", self.sprite_name,
                                  chunk.data.decode(errors="replace").rstrip())
                    continue
                pending += chunk.data
                *complete, pending = pending.split(b"\n")
                for line in complete:
                    with contextlib.suppress(ValueError):
                        yield json.loads(line)
        except (SpritesError, OSError):
            return

    def _handle(self, request: dict[str, Any]) -> None:
        request_id = request.get("id")
        method = str(request.get("method", "")).upper()
        target = str(request.get("path", ""))
        path = target.split("?", 1)[0]
        try:
            body = base64.b64decode(request.get("body") or "")
        except ValueError:
            body = b""
        restore = self._restore.fullmatch(path) if method == "POST" else None
        if restore is None and not any(method == allowed and pattern.fullmatch(path)
                                       for allowed, pattern in self._allowed):
            self._refuse(request_id, method, path)
            return
        if restore is not None:
            with self._idle:
                self._restores += 1
            self._restoring()
        try:
            self._forward(request_id, method, target, body,
                          str(request.get("content_type") or ""),
                          restore.group(1) if restore else None)
        finally:
            if restore is not None:
                with self._idle:
                    self._restores -= 1
                    self._idle.notify_all()
                self._restored()

    def _forward(self, request_id: Any, method: str, target: str, body: bytes,
                 content_type: str, restoring: str | None) -> None:
        if restoring is not None:
            self._answer_restore(request_id, restoring)
            time.sleep(RESTORE_DELAY)  # the kernel's cell ends before the restore stops it
        headers = {"Content-Type": content_type} if content_type else {}
        try:
            with self._http.stream(method, target, content=body or None,
                                   headers=headers) as response:
                if restoring is not None:
                    self._log_restore(restoring, response)
                    return
                self._send({"id": request_id, "head": {
                    "status": response.status_code,
                    "headers": {"content-type": response.headers.get("content-type", "")}}})
                for data in response.iter_raw(_CHUNK):
                    self._send({"id": request_id, "data": base64.b64encode(data).decode()})
        except httpx.HTTPError as error:
            reason = f"the kernel's provisioner cannot reach the Sprites API: {error}"
            if restoring is not None:
                self.log.error("Sprite %s: restoring %s failed: %s", self.sprite_name,
                               restoring, reason)
                return
            self._send({"id": request_id, "head": {
                "status": 502, "headers": {"content-type": "application/json"}}})
            self._send({"id": request_id, "data": _json64({"error": reason})})
        finally:
            if restoring is None:
                self._send({"id": request_id, "end": True})

    def _answer_restore(self, request_id: Any, checkpoint: str) -> None:
        """Answer the kernel at once, in one line: the restore will stop it mid-cell."""
        self._send({"id": request_id, "head": {
            "status": 200, "headers": {"content-type": "application/x-ndjson"}}})
        for event in ({"type": "info", "data": f"Restoring {checkpoint}: {RESTORE_NOTICE}"},
                      {"type": "complete", "data": f"restore of {checkpoint} under way"}):
            self._send({"id": request_id, "data": _json64(event, newline=True)})
        self._send({"id": request_id, "end": True})

    def _log_restore(self, checkpoint: str, response: httpx.Response) -> None:
        """Follow the restore to its end, into the log (the kernel is gone meanwhile)."""
        if response.status_code != 200:
            self.log.error("Sprite %s: restoring %s failed: %s", self.sprite_name, checkpoint,
                           response.read().decode(errors="replace").strip()[:500])
            return
        for line in response.iter_lines():
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict) and event.get("type") == "error":
                    self.log.error("Sprite %s: restoring %s failed: %s", self.sprite_name,
                                   checkpoint, event.get("error"))
                    return
        self.log.info("Sprite %s: restored %s for its kernel", self.sprite_name, checkpoint)

    def _refuse(self, request_id: Any, method: str, path: str) -> None:
        self.log.warning("Sprite %s: refused %s %s from its kernel", self.sprite_name,
                         method, path)
        message = (f"refused: a sprite kernel may only take, list and restore checkpoints of "
                   f"its own sprite ({self.sprite_name}); do this from a notebook whose "
                   "kernel runs on your machine")
        self._send({"id": request_id, "head": {
            "status": 403, "headers": {"content-type": "application/json"}}})
        self._send({"id": request_id, "data": _json64({"error": message})})
        self._send({"id": request_id, "end": True})

    def _send(self, message: dict[str, Any]) -> None:
        command = self._command
        if command is None:
            return
        with self._write_lock, contextlib.suppress(SpritesError, OSError):
            command.write(json.dumps(message) + "\n")


def _json64(document: dict[str, Any], *, newline: bool = False) -> str:
    return base64.b64encode(json.dumps(document).encode()
                            + (b"\n" if newline else b"")).decode()
