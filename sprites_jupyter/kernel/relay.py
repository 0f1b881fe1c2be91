"""The provisioner's end of a sprite kernel's checkpoint channel.

The provisioner opens an exec session in the sprite running
:mod:`sprites_jupyter.remote.kernel_relay`; the kernel's ``%sprite`` magics send their
API requests to it, and they arrive here as lines on that session's stdout. Here they
are checked (only this kernel's own sprite, only checkpoints: take, list, look up,
restore) and performed with the provisioner's credentials, so the sprite never holds a
token. A restore stops every process in the sprite, this kernel among them: the kernel
is told so in one line before the restore starts, and the next launch waits for it.
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
from collections.abc import Iterator
from importlib import resources
from typing import Any

import httpx

from ..client import Command, Sprite, SpritesError

HOME = "/home/sprite"
RUNTIME_DIR = ".sprites-jupyter/runtime"  # under HOME, where the kernel starts
SCRIPT_NAME = "kernel_relay.py"
REOPEN_FOR = 60.0  # an old end still holds the address for a while after a drop
REOPEN_PAUSE = 1.0
RESTORE_NOTICE_PAUSE = 0.5  # lets the kernel show the notice before it is stopped
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

    def __init__(self, sprite_name: str, log: logging.Logger) -> None:
        self.sprite_name = sprite_name
        self.log = log
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

    def start(self, sprite: Sprite, python: str, address: str, key: str) -> None:
        """Start the in-sprite end, listening on the abstract socket ``address`` for
        requests that carry ``key``; reopened should its connection drop."""
        self._generation += 1
        lines = self._open(sprite, python, address, key)
        threading.Thread(target=self._serve, daemon=True, name=f"relay {sprite.name}",
                         args=(lines, self._generation, (sprite, python, address, key))).start()

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
            deadline = time.monotonic() + REOPEN_FOR
            while generation == self._generation:
                try:
                    lines = self._open(*how)
                    break
                except (SpritesError, OSError):
                    if time.monotonic() > deadline:
                        self.log.warning("Sprite %s: no checkpoint relay for the kernel "
                                         "until it restarts", self.sprite_name)
                        return
                    time.sleep(REOPEN_PAUSE)  # the old end may still hold the address
            else:
                return

    def stop(self) -> None:
        """Stop the in-sprite end (a restarted kernel gets a new one)."""
        self._generation += 1
        command, self._command = self._command, None
        if command is not None:
            with contextlib.suppress(SpritesError, OSError):
                command.kill()  # not close(): its reading thread owns the receiving side
            command.detach()

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
        try:
            self._forward(request_id, method, target, body,
                          str(request.get("content_type") or ""),
                          restore.group(1) if restore else None)
        finally:
            if restore is not None:
                with self._idle:
                    self._restores -= 1
                    self._idle.notify_all()

    def _forward(self, request_id: Any, method: str, target: str, body: bytes,
                 content_type: str, restoring: str | None) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        if restoring is not None:  # the kernel hears first: the restore will stop it
            self._send({"id": request_id, "head": {
                "status": 200, "headers": {"content-type": "application/x-ndjson"}}})
            self._send({"id": request_id, "data": _json64({
                "type": "info", "data": f"Restoring {restoring}: this kernel stops now and "
                "restarts on the restored sprite (its variables are gone)"}, newline=True)})
            time.sleep(RESTORE_NOTICE_PAUSE)
            self.log.info("Sprite %s: restoring %s for its kernel, which restarts",
                          self.sprite_name, restoring)
        try:
            with self._http.stream(method, target, content=body or None,
                                   headers=headers) as response:
                if restoring is None:
                    self._send({"id": request_id, "head": {
                        "status": response.status_code,
                        "headers": {"content-type": response.headers.get("content-type", "")},
                    }})
                elif response.status_code != 200:
                    failure = response.read().decode(errors="replace").strip()[:500]
                    self._send({"id": request_id, "data": _json64(
                        {"type": "error", "error": failure}, newline=True)})
                    return
                for data in response.iter_raw(_CHUNK):
                    self._send({"id": request_id, "data": base64.b64encode(data).decode()})
        except httpx.HTTPError as error:
            reason = f"the kernel's provisioner cannot reach the Sprites API: {error}"
            if restoring is None:
                self._send({"id": request_id, "head": {
                    "status": 502, "headers": {"content-type": "application/json"}}})
                self._send({"id": request_id, "data": _json64({"error": reason})})
            else:
                self._send({"id": request_id, "data": _json64(
                    {"type": "error", "error": reason}, newline=True)})
        finally:
            self._send({"id": request_id, "end": True})

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
