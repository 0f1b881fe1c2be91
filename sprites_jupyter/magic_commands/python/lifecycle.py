"""Which Python session serves this kernel on a sprite, and the truth when it ended.

One agent per (kernel, sprite): reused while it runs, reconnected after a dropped
connection, started on first use. When its process ended (a restore, a restart, a
kill) the next use raises one line saying why, naming the checkpoint a restore
went to (from this kernel's journal, else from the automatic checkpoint servers
take before a restore); only the use after that starts a fresh interpreter. When
the checkpoint it was restored to holds the session's saved namespace
(:mod:`.session_state`), the next use resumes it instead.
"""

from __future__ import annotations

import contextlib
import re
import sys
import weakref
from datetime import UTC, datetime

from IPython.core.error import UsageError

from ...client import NotFound, Sprite, SpritesError
from ..context import CommandContext
from ..session_state import resume_saved
from .session import HOME, STATE_DIR, PythonSession

__all__ = ["detach_all", "forget", "running_agents", "session_for", "sessions_of"]

_SESSIONS_DIR = f"{HOME}/{STATE_DIR}/sessions"
_RESTORED_TO = re.compile(r"before restore to (\S+)$")

_registry: weakref.WeakKeyDictionary[CommandContext, dict[str, PythonSession]] = (
    weakref.WeakKeyDictionary())


def sessions_of(ctx: CommandContext) -> dict[str, PythonSession]:
    return _registry.setdefault(ctx, {})


def detach_all(ctx: CommandContext) -> None:
    """Leave every agent of this kernel running (the extension is unloading)."""
    for session in sessions_of(ctx).values():
        with contextlib.suppress(Exception):
            session.detach()
    sessions_of(ctx).clear()


def _restored_to(ctx: CommandContext, session: PythonSession) -> str:
    """The checkpoint the sprite was restored to since the session started, if any."""
    name = session.sprite.name
    restores = [entry for entry in ctx.journal.entries
                if entry.sprite == name and entry.operation == "restore"
                and entry.outcome.startswith("ok") and entry.time >= session.started_at]
    if restores:
        return restores[-1].target
    return _restore_seen_in_checkpoints(session)


def _why_ended(ctx: CommandContext, session: PythonSession) -> str:
    restored_to = _restored_to(ctx, session)
    if restored_to:
        return f"the sprite was restored to {restored_to}"
    boot_id = session.info.get("boot_id")
    if boot_id:
        with contextlib.suppress(SpritesError, OSError):
            now = session.sprite.run("cat", "/proc/sys/kernel/random/boot_id", timeout=30)
            if now.exit_code == 0 and now.stdout.strip() != boot_id:
                return "the sprite restarted"
    code = session.exit_code
    if code is not None and code > 128:
        return f"its process was killed (exit code {code})"
    if code is not None:
        tail = session.stderr_tail()
        return f"its process exited with code {code}" + (f": {tail}" if tail else "")
    return "its process is no longer running"


def _restore_seen_in_checkpoints(session: PythonSession) -> str:
    """A restore made elsewhere (another kernel, the API) shows as the automatic
    ``before restore to ID`` checkpoint servers such as the local one take."""
    try:
        listed = session.sprite.list_checkpoints(include_auto=True)
    except (SpritesError, OSError):
        return ""
    for checkpoint in sorted(listed, key=lambda c: c.create_time or session.started_at,
                             reverse=True):
        found = _RESTORED_TO.match(checkpoint.comment)
        if checkpoint.is_auto and found and checkpoint.create_time \
                and checkpoint.create_time >= session.started_at:
            return found.group(1)
    return ""


def _ended(ctx: CommandContext, session: PythonSession) -> UsageError:
    return UsageError(f"The Python session on sprite {session.sprite.name} ended "
                      f"({_why_ended(ctx, session)}): its variables are gone; run the cell "
                      "again to start a fresh one")


def _reattached(session: PythonSession) -> PythonSession | None:
    """A new connection to the same agent after the old one dropped, if it still runs."""
    try:
        fresh = PythonSession.attach(session.sprite, session.session_id)
    except (SpritesError, OSError, UsageError):
        return None
    fresh.started_at = session.started_at
    return fresh


def session_for(ctx: CommandContext, name: str, *, fresh: bool = False,
                python: str | None = None) -> PythonSession:
    """This kernel's agent on ``name``: reused, reconnected, resumed from the namespace a
    restored checkpoint holds, or started; never silently replaced when it had ended
    (that raises the one-line error once)."""
    sessions = sessions_of(ctx)
    session = sessions.get(name)
    if session is not None and fresh:
        with contextlib.suppress(Exception):
            session.stop()
        del sessions[name]
        session = None
    if session is not None and session.lost and session.exit_code is None:
        session = _reattached(session) or session
        sessions[name] = session
    interpreter = python or ctx.settings.python or None
    if session is not None and not session.alive:
        del sessions[name]
        ended, python_of_ended = session, session.python
        resumed = resume_saved(ended.sprite, lambda s: PythonSession.start(s, python_of_ended),
                               ended.session_id, _restored_to(ctx, ended))
        if resumed is None:
            raise _ended(ctx, ended)
        sessions[name] = session = resumed
    if session is None and not fresh:
        session = resume_saved(ctx.sprite(name), lambda s: PythonSession.start(s, interpreter),
                               None)
    if session is None:
        session = _start(ctx, name, interpreter)
    sessions[name] = session
    return session


def running_agents(sprite: Sprite) -> list[str]:
    """Session ids of the agents running on the sprite (their files say which), newest
    first."""
    running = {s.id: s for s in sprite.list_sessions()}
    try:
        recorded = [entry.name.removesuffix(".json") for entry in sprite.list_dir(_SESSIONS_DIR)
                    if entry.name.endswith(".json")]
    except NotFound:
        return []
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted((sid for sid in recorded if sid in running),
                  key=lambda sid: running[sid].created or oldest, reverse=True)


def _start(ctx: CommandContext, name: str, python: str | None) -> PythonSession:
    """A new agent; says so when another is already running there (attach reaches it)."""
    sprite = ctx.sprite(name)
    others = running_agents(sprite)
    session = PythonSession.start(sprite, python)
    if others:
        print(f"Started a new Python session on sprite {name}; {len(others)} other "
              f"{'session is' if len(others) == 1 else 'sessions are'} running there "
              f"(session {others[0]} is the newest): %sprite python stop this one and "
              "%sprite python attach to use that instead", file=sys.stderr)
    return session


def forget(ctx: CommandContext, session: PythonSession) -> UsageError:
    """Drop an ended session (the next cell starts afresh); the error that says so."""
    sessions_of(ctx).pop(session.sprite.name, None)
    return _ended(ctx, session)
