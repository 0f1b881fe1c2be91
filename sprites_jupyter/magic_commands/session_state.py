"""The Python session's variables ride the checkpoint: save before, resume after.

Before a checkpoint (and before a restore, so its undo point holds them too) this
kernel's live session on the sprite saves its namespace inside the sprite
(:mod:`sprites_jupyter.remote.python_state`): the filesystem checkpoint then holds
files and variables together, on any server, through exec and files alone. After a
restore the session's process is gone; the next use finds the saved namespace in
the restored tree and resumes it in a new process.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from datetime import datetime

from ..client import NotFound, Sprite, SpritesError
from .python.session import HOME, PythonSession, SessionEnded

__all__ = ["STATE_ROOT", "describe_save", "end_after_restore", "resume_saved", "save_others",
           "save_session", "saved_states"]

STATE_ROOT = f"{HOME}/.sprites_jupyter/state/v1"
SAVE_WAIT = 600.0
# Another kernel's session may be running a cell: its save is not waited for long.
OTHER_SAVE_WAIT = 30.0
RESUME_WAIT = 600.0
ENDED_WAIT = 5.0
# How far the sprite's clock may be off the API's when matching a save to its checkpoint.
CLOCK_SKEW = 60.0


def _bytes(count: int) -> str:
    size = float(count)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{count} B"


def describe_save(value: dict) -> str:
    """``saved 10 variables (1 changed, 10.0 MB) in 31 ms; not saveable: conn (socket)``."""
    seconds = float(value.get("seconds") or 0)
    took = f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"
    line = (f"saved {value.get('variables', 0)} variables ({value.get('written', 0)} "
            f"changed, {_bytes(int(value.get('bytes') or 0))}) in {took}")
    unsaveable = value.get("unsaveable") or {}
    if unsaveable:
        line += "; not saveable: " + ", ".join(f"{name} ({kind})"
                                              for name, kind in unsaveable.items())
    return line


def save_session(session: PythonSession | None) -> str:
    """Ask a live session to save its namespace; what happened, in one line ("" when
    there is no session). Never fails the checkpoint."""
    if session is None or not session.alive:
        return ""
    if not session.in_use.acquire(timeout=0):
        return "the Python session is running a cell: its variables are not in it"
    try:
        done = session.call("save", timeout=SAVE_WAIT)
    except SessionEnded:
        return ""
    finally:
        session.in_use.release()
    if done.get("status") != "ok":
        return f"the Python session's variables are not in it ({done.get('ename')}: " \
               f"{done.get('evalue')})"
    return describe_save(done.get("value") or {})


def save_others(sprite: Sprite, session_ids: list[str]) -> list[str]:
    """Ask the sessions other kernels left running on the sprite to save too (attached
    for the request, then left running); one line each."""
    lines = []
    for session_id in session_ids:
        try:
            other = PythonSession(sprite, sprite.attach(session_id, stdin=True))
        except (SpritesError, OSError):
            continue
        try:
            done = other.call("save", timeout=OTHER_SAVE_WAIT)
            saved = describe_save(done.get("value") or {}) if done.get("status") == "ok" \
                else f"not saved ({done.get('ename')}: {done.get('evalue')})"
        except SessionEnded:
            saved = "busy (running a cell): its variables are not in it"
        finally:
            other.detach()
        lines.append(f"session {session_id}: {saved}")
    return lines


def end_after_restore(session: PythonSession | None) -> None:
    """A restore stops the sprite's processes; make sure the session is seen as ended
    (a server that left it running gets it stopped: its variables belong to the state
    the restore replaced), so the next use resumes what the checkpoint holds."""
    if session is None:
        return
    session.wait_ended(ENDED_WAIT)
    if session.alive:
        session.kill()


def saved_states(sprite: Sprite) -> dict[str, dict]:
    """The manifests of the saved namespaces on the sprite, by session id."""
    try:
        folders = [entry.name for entry in sprite.list_dir(STATE_ROOT)]
    except NotFound:
        return {}
    found = {}
    for folder in folders:
        with contextlib.suppress(NotFound, ValueError):
            found[folder] = json.loads(sprite.read_file(f"{STATE_ROOT}/{folder}/manifest.json"))
    return found


def _checkpoint_after(sprite: Sprite, saved_at: float | None) -> str:
    """The checkpoint a save was made for: the first one taken after it."""
    if saved_at is None:
        return ""
    with contextlib.suppress(SpritesError, OSError):
        taken = [(c.create_time.timestamp(), c.id)
                 for c in sprite.list_checkpoints(include_auto=True)
                 if c.create_time is not None
                 and c.create_time.timestamp() >= saved_at - CLOCK_SKEW]
        if taken:
            return min(taken)[1]
    return ""


def resume_saved(sprite: Sprite, start: Callable[[Sprite], PythonSession],
                 ended: str | None, restored_to: str = "") -> PythonSession | None:
    """A new session holding the namespace a checkpoint saved: the ended session's
    (``ended``, its id) or, with none, the newest one no running session owns."""
    name = sprite.name
    if ended is not None:
        try:
            sprite.stat(f"{STATE_ROOT}/{ended}/manifest.json")
            chosen: str | None = ended
        except NotFound:
            chosen = None
    else:
        states = saved_states(sprite)
        running = {s.id for s in sprite.list_sessions()}
        orphans = [(float(m.get("saved_at") or 0), sid) for sid, m in states.items()
                   if sid not in running]
        chosen = max(orphans)[1] if orphans else None
    if chosen is None:
        return None
    session = start(sprite)
    done = session.call("resume", timeout=RESUME_WAIT, session_id=chosen)
    if done.get("status") != "ok":
        print(f"Could not restore the Python session's variables on sprite {name} "
              f"({done.get('ename')}: {done.get('evalue')}): started a fresh session",
              file=sys.stderr)
        return session
    value = done.get("value") or {}
    source = restored_to or _checkpoint_after(sprite, value.get("saved_at"))
    if not source and value.get("saved_at"):
        source = "the save of " + datetime.fromtimestamp(value["saved_at"]).strftime("%H:%M:%S")
    lost = value.get("not_restorable") or {}
    line = f"restored {value.get('restored', 0)} variables from {source or 'the saved state'}"
    if lost:
        line += f" (not restorable: {', '.join(lost)})"
    print(line)
    return session
