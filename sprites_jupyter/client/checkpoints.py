"""Checkpoints of a sprite: create (streamed), list, get, restore (streamed), delete."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from .checkpoint_list import CheckpointList, checkpoint_objects, decode
from .errors import NotFound, ProtocolError
from .handle import SpriteHandle
from .http import segment
from .models import Checkpoint, StreamMessage
from .streams import EventStream

_VERSION = re.compile(r"\bv\d+\b")
LIVE_ID = "Current"


def _named_id(event: StreamMessage | None) -> str | None:
    """The new checkpoint's id as a ``complete`` event gives it: an ``id`` field, or the
    ``vN`` token of its text (``Checkpoint v3 created``)."""
    if event is None:
        return None
    for key in ("id", "checkpoint_id"):
        value = event.extra.get(key)
        if isinstance(value, str) and value:
            return value
    match = _VERSION.search(event.text)
    return match.group(0) if match else None


class CheckpointStream(EventStream[StreamMessage]):
    """The events of a checkpoint creation; ``result`` is the new :class:`Checkpoint`.

    The id comes from the ``complete`` event (every server version names it), and the
    checkpoint itself where the event carries it (the local server does: no GET, which
    cost as much as the creation at thousands of checkpoints); when it names none that
    exists, the newest manual checkpoint listed after the creation is taken. Nothing is
    listed beforehand.
    """

    def __init__(self, response: httpx.Response, *, what: str,
                 fetch: Callable[[str | None], Checkpoint], raise_on_error: bool = True) -> None:
        super().__init__(response, StreamMessage.from_json, what=what,
                         raise_on_error=raise_on_error)
        self.result: Checkpoint | None = None
        self._fetch = fetch

    def _on_end(self) -> None:
        named = _named_id(self.complete)
        sent = self.complete.extra.get("checkpoint") if self.complete is not None else None
        if isinstance(sent, dict) and named is not None and sent.get("id") == named:
            self.result = Checkpoint.from_json(sent)
        else:
            self.result = self._fetch(named)

    def wait(self) -> Checkpoint:  # type: ignore[override]
        """Consume the stream; return the new checkpoint."""
        super().wait()
        if self.result is None:
            raise ProtocolError(f"{self.what}: the stream ended without a checkpoint")
        return self.result


class CheckpointsMixin(SpriteHandle):
    def create_checkpoint(self, comment: str = "", *,
                          raise_on_error: bool = True) -> CheckpointStream:
        """Snapshot the sprite's filesystem; iterate for progress or ``.wait()`` for it."""
        what = f"checkpoint of {self.name}"
        response = self._http.stream("POST", self._path("/checkpoint"), what=what,
                                     json={"comment": comment} if comment else {})
        return CheckpointStream(response, what=what, fetch=self._created,
                                raise_on_error=raise_on_error)

    def _created(self, named: str | None) -> Checkpoint:
        if named is not None:
            try:
                return self.get_checkpoint(named)
            except NotFound:
                pass
        listed = list(self.list_checkpoints())
        if not listed:
            raise ProtocolError(f"checkpoint of {self.name}: completed, but no checkpoint "
                                "is listed")
        return max(listed, key=lambda c: c.create_time or datetime.min.replace(tzinfo=UTC))

    def list_checkpoints(self, include_auto: bool = False,
                         history: str | None = None) -> CheckpointList:
        """Checkpoints as the server lists them (newest first), every entry whatever its
        id, except the ``Current`` pseudo-entry for the live state.

        ``history`` keeps those descending from that checkpoint (servers answer this
        in JSON or as text lines of ids; both are read).
        """
        params: dict[str, str] = {}
        if include_auto:
            params["includeAuto"] = "true"
        if history:
            params["history"] = history
        response = self._http.request("GET", self._path("/checkpoints"), params=params,
                                      what=f"list checkpoints of {self.name}")
        if history and "json" not in response.headers.get("content-type", ""):
            lines = (line.strip() for line in response.text.splitlines())
            body: object = [self._checkpoint_object(line) for line in lines if line]
        else:
            body = decode(response.content)
        return CheckpointList(checkpoint_objects(body, skip=LIVE_ID,
                                                 what=f"list checkpoints of {self.name}"))

    def get_checkpoint(self, id: str) -> Checkpoint:
        return Checkpoint.from_json(self._checkpoint_object(id))

    def _checkpoint_object(self, id: str) -> object:
        response = self._http.request("GET", self._path(f"/checkpoints/{segment(id)}"),
                                      what=f"get checkpoint {id} of {self.name}")
        return response.json()

    def restore_checkpoint(self, id: str, *,
                           raise_on_error: bool = True) -> EventStream[StreamMessage]:
        """Replace the sprite's filesystem with checkpoint ``id`` (destructive; streamed).

        Running processes and exec sessions end; services restart from the restored
        definitions.
        """
        return self._stream("POST", f"/checkpoints/{segment(id)}/restore",
                            StreamMessage.from_json, what=f"restore {self.name} to {id}",
                            raise_on_error=raise_on_error)

    def delete_checkpoint(self, id: str) -> None:
        self._http.request("DELETE", self._path(f"/checkpoints/{segment(id)}"),
                           what=f"delete checkpoint {id} of {self.name}")
