"""One file or folder of a checkpoint: a text file's unified diff between two trees,
a file's bytes, a folder's entries as the filesystem API lists them.
"""

from __future__ import annotations

import base64
import difflib
import json
import os
import stat

from .diff_views import OPEN_FLAGS, Refusal, View, kind, lstat

BINARY_PROBE = 8192


def is_binary(data: bytes) -> bool:
    if b"\0" in data[:BINARY_PROBE]:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def read_side(root: str, rel: str) -> bytes | None:
    info = lstat(root, rel)
    if info is None:
        return None
    if stat.S_ISDIR(info.st_mode):
        raise Refusal({"error": f"/{rel} is a directory: compare it with "
                                f"%sprite diff A [B] -- /{rel}"})
    if not stat.S_ISREG(info.st_mode):
        raise Refusal({"error": f"/{rel} is a {kind(info)}, not a regular file"})
    try:
        with os.fdopen(os.open(os.path.join(root, rel), OPEN_FLAGS), "rb") as file:
            return file.read()
    except OSError as error:
        raise Refusal({"error": f"cannot read /{rel}: {error.strerror}"}) from None


def file_diff(root_a: str, root_b: str, rel: str, label_a: str, label_b: str) -> dict:
    data_a = read_side(root_a, rel)
    data_b = read_side(root_b, rel)
    if data_a is None and data_b is None:
        raise Refusal({"error": f"/{rel} exists in neither {label_a} nor {label_b}"})
    answer = {"size_a": None if data_a is None else len(data_a),
              "size_b": None if data_b is None else len(data_b),
              "same": data_a == data_b, "binary": False, "diff": ""}
    if any(data is not None and is_binary(data) for data in (data_a, data_b)):
        answer["binary"] = True
        return answer
    lines_a = (data_a or b"").decode("utf-8").splitlines(keepends=True)
    lines_b = (data_b or b"").decode("utf-8").splitlines(keepends=True)
    answer["diff"] = "".join(difflib.unified_diff(
        lines_a, lines_b, f"{label_a}:/{rel}" if data_a is not None else "/dev/null",
        f"{label_b}:/{rel}" if data_b is not None else "/dev/null"))
    return answer


def read_file(view: View, rel: str) -> dict:
    root = view.root
    info = view.lstat(rel)
    if info is None:
        raise Refusal({"error": f"no such file or directory: /{rel}"})
    answer = {"type": kind(info), "size": info.st_size, "mode": f"{stat.S_IMODE(info.st_mode):04o}"}
    if stat.S_ISLNK(info.st_mode):
        answer["target"] = os.readlink(os.path.join(root, rel))
    elif stat.S_ISREG(info.st_mode):
        data = read_side(root, rel) or b""
        answer["data"] = base64.b64encode(data).decode("ascii")
    return answer


def entry(rel: str, info: os.stat_result) -> dict:
    what = kind(info)
    return {"name": rel.rsplit("/", 1)[-1], "path": "/" + rel,
            "type": what if what in ("directory", "symlink") else "file", "size": info.st_size,
            "mode": f"{stat.S_IMODE(info.st_mode):04o}", "modTime": info.st_mtime,
            "isDir": what == "directory"}


def list_dir(view: View, rel: str, out) -> None:
    info = view.lstat(rel)
    if info is None:
        raise Refusal({"error": f"no such file or directory: /{rel}"})
    if not stat.S_ISDIR(info.st_mode):
        out.write(json.dumps(entry(rel, info)) + "\n")
        return
    prefix = rel + "/" if rel else ""
    for name, child in sorted(view.children(rel).items()):
        out.write(json.dumps(entry(prefix + name, child)) + "\n")
