"""Runs in a sprite beside a sprite kernel: the kernel's way to ask for checkpoints.

The kernel connects to the abstract Unix socket named in argv[1] (no file, so no path
length limit and nothing left behind) and sends one JSON line: an HTTP request for the
Sprites API (body in base64) with the key the provisioner gave the kernel and this
program (its first line of stdin), so other processes in the sprite are turned away.
The request goes on as a line on stdout, which is the exec session the provisioner
opened: the provisioner checks it, performs it with its own credentials (the sprite
never sees a token) and answers on stdin with lines ``{"id", "head"}``,
``{"id", "data"}``…, ``{"id", "end"}``, passed back to the kernel as a JSON head line
and then the raw body. Standard library only: it runs on whatever Python the sprite has.
"""

import base64
import hmac
import json
import os
import socket
import sys
import threading
from typing import Dict, List

_lock = threading.Lock()
_waiting: Dict[int, socket.socket] = {}  # request id -> the kernel's connection
_counter = [0]
_key: List[str] = []


def _serve(connection):
    reader = connection.makefile("rb")
    line = reader.readline()
    if not line:
        connection.close()
        return
    try:
        request = json.loads(line.decode())
    except ValueError:
        request = {}
    if not _key or not hmac.compare_digest(str(request.pop("key", "")), _key[0]):
        connection.sendall(b'{"status": 403, "headers": {}}\n')
        connection.close()
        return
    with _lock:
        _counter[0] += 1
        request_id = _counter[0]
        _waiting[request_id] = connection
        request["id"] = request_id
        sys.stdout.write(json.dumps(request) + "\n")
        sys.stdout.flush()


def _answer(message):
    with _lock:
        connection = _waiting.get(message.get("id"))
    if connection is None:
        return
    try:
        if "head" in message:
            connection.sendall(json.dumps(message["head"]).encode() + b"\n")
        if "data" in message:
            connection.sendall(base64.b64decode(message["data"]))
    except OSError:
        message["end"] = True
    if message.get("end"):
        with _lock:
            _waiting.pop(message.get("id"), None)
        connection.close()


def _read_answers():
    for line in sys.stdin.buffer:
        try:
            _answer(json.loads(line.decode()))
        except ValueError:
            continue
    os._exit(0)  # the provisioner has gone: so does the way to it


def main():
    _key.append(json.loads(sys.stdin.buffer.readline().decode())["key"])
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind("\0" + sys.argv[1])
    except OSError as error:  # an earlier end, cut off, still holds it: asked again soon
        sys.stderr.write(f"cannot listen yet: {error}\n")
        sys.exit(1)
    listener.listen(16)
    threading.Thread(target=_read_answers, daemon=True).start()
    sys.stdout.write(json.dumps({"ready": sys.argv[1]}) + "\n")
    sys.stdout.flush()
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=_serve, args=(connection,), daemon=True).start()


if __name__ == "__main__":
    main()
