"""Compare, list and read a sprite's checkpoints from inside the sprite.

Run inside the sprite as ``python3 - REQUEST`` with this module and its siblings on
stdin as one program (built by :func:`bundle.build`), where REQUEST is one JSON object
(standard library only, Python 3.8+), so nothing but the answer crosses the network:

- ``{"op": "diff", "a": ID, "b": ID or null, "paths": [...], "since": S}``: one
  JSON array per differing path, ``[path, change, size_a, size_b, mtime_a_ns,
  mtime_b_ns]``. ``b`` null means the sprite as it is now; ``since`` (Unix
  seconds, when A was taken) matters when A's view holds only the sprite's own
  layer (no ``/usr/bin``), as the local server's do: see ``diff_trees.Comparison.added``.
- ``{"op": "file", "a": ID, "b": ID or null, "path": P}``: one object, the
  unified diff of a text file or the sizes of a binary one.
- ``{"op": "read", "a": ID, "path": P}``: one object with the base64 bytes.
- ``{"op": "list", "a": ID, "path": P}``: one object per entry, as the
  filesystem API lists them.

Checkpoints are the read-only trees under ``/.sprite/checkpoints`` and "now"
is ``/``; a request may name other roots (``"checkpoints"``, ``"now"``) and another
mount table (``"mountinfo"``). A checkpoint that is not there exits 3 with
``{"error": "not-mounted", "mounted": [...]}``; other refusals exit 2 with
``{"error": MESSAGE}``.

What the platform owns is never a change (:mod:`diff_mounts`), nor the paths a request
names as its caller's own bookkeeping (``"own"``); how trees are walked and files
compared is :mod:`diff_trees`, single files and folders :mod:`diff_files`.
"""

from __future__ import annotations

import json
import os
import sys

from .diff_files import file_diff, list_dir, read_file
from .diff_mounts import MOUNTINFO, platform_mounts
from .diff_trees import Comparison
from .diff_views import CHECKPOINTS, RECORD, Refusal, View, checkpoint_root, record_of, relative


def answer(request: dict, out) -> None:
    """Write the answer to one request on ``out`` (raises Refusal)."""
    op = request.get("op")
    checkpoints = request.get("checkpoints") or CHECKPOINTS
    now = request.get("now") or "/"
    root_a = checkpoint_root(checkpoints, str(request.get("a") or ""))
    b = request.get("b")
    root_b = now if b is None else checkpoint_root(checkpoints, str(b))
    view_a = View(root_a, record_of(root_a))
    view_b = View(now, {}) if b is None else View(root_b, record_of(root_b))
    if op == "diff":
        since = request.get("since")
        layer_only = (b is None and since is not None
                      and not os.path.lexists(os.path.join(root_a, "usr", "bin"))
                      and os.path.isdir(os.path.join(now, "usr", "bin")))
        skipped = platform_mounts(request.get("mountinfo") or MOUNTINFO)
        own = request.get("own") or ()
        skipped.update(relative(path) for path in [checkpoints, RECORD, *own])
        skipped.discard("")
        cutoff = int(since * 1e9) if layer_only and since is not None else None
        comparison = Comparison(view_a, view_b, out, cutoff, frozenset(skipped))
        for path in request.get("paths") or ["/"]:
            comparison.path(relative(path))
        comparison.read_contents()
    elif op == "file":
        label_b = "now" if b is None else str(b)
        out.write(json.dumps(file_diff(root_a, root_b, relative(request["path"]),
                                       str(request["a"]), label_b)) + "\n")
    elif op == "read":
        out.write(json.dumps(read_file(view_a, relative(request["path"]))) + "\n")
    elif op == "list":
        list_dir(view_a, relative(request["path"]), out)
    else:
        raise Refusal({"error": f"unknown op {op!r}"})


def main(argv: list) -> int:
    out = sys.stdout
    try:
        answer(json.loads(argv[1]), out)
    except Refusal as refusal:
        out.write(json.dumps(refusal.answer) + "\n")
        return refusal.code
    finally:
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
