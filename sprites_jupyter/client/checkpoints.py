"""Checkpoints of a sprite: create (streamed), list, get, restore (streamed), delete."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx

from .errors import ProtocolError
from .handle import SpriteHandle
from .http import segment
from .models import Checkpoint, StreamMessage
from .streams import EventStream

_VERSION = re.compile(r"\bv(\d+)\b")


def _listed(checkpoint_id: object, include_auto: bool) -> bool:
    """User checkpoints ``v<N>`` (and ``auto-<ms>`` when asked); never ``Current``."""
    if not isinstance(checkpoint_id, str):
        return False
    if not checkpoint_id.isascii():
        return False
    if checkpoint_id[:1] == "v" and checkpoint_id[1:].isdigit():
        return True
    return include_auto and checkpoint_id[:5] == "auto-" and checkpoint_id[5:].isdigit()


class CheckpointStream(EventStream[StreamMessage]):
    """The events of a checkpoint creation; ``result`` is the new :class:`Checkpoint`.

    The id is read from the ``complete`` event's text (``Checkpoint v3 created``); should
    a server not name it, the newest ``v<N>`` is taken from the list instead.
    """

    def __init__(self, response: httpx.Response, *, what: str,
                 fetch: Callable[[str | None], Checkpoint], raise_on_error: bool = True) -> None:
        super().__init__(response, StreamMessage.from_json, what=what,
                         raise_on_error=raise_on_error)
        self.result: Checkpoint | None = None
        self._fetch = fetch

    def _on_complete(self, event: StreamMessage) -> None:
        match = _VERSION.search(event.text)
        self.result = self._fetch(match.group(0) if match else None)

    def wait(self) -> Checkpoint:  # type: ignore[override]
        """Consume the stream; return the new checkpoint."""
        super().wait()
        if self.result is None:
            raise ProtocolError(f"{self.what}: the stream completed without a checkpoint")
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

    def _created(self, checkpoint_id: str | None) -> Checkpoint:
        if checkpoint_id is not None:
            return self.get_checkpoint(checkpoint_id)
        versions = self.list_checkpoints()
        if not versions:
            raise ProtocolError(f"checkpoint of {self.name}: completed, but no checkpoint "
                                "is listed")
        return max(versions, key=lambda c: int(c.id[1:]))

    def list_checkpoints(self, include_auto: bool = False,
                         history: str | None = None) -> list[Checkpoint]:
        """Checkpoints newest first, without the ``Current`` pseudo-entry.

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
            ids = [m.group(0) for line in response.text.splitlines()
                   if (m := re.search(r"\b(v\d+|auto-\d+)\b", line))]
            return [self.get_checkpoint(checkpoint_id) for checkpoint_id in ids]
        body = response.json()
        if not isinstance(body, list):
            raise ProtocolError(f"list checkpoints of {self.name}: expected a JSON array")
        return [Checkpoint.from_json(item) for item in body
                if isinstance(item, dict) and _listed(item.get("id"), include_auto)]

    def get_checkpoint(self, id: str) -> Checkpoint:
        response = self._http.request("GET", self._path(f"/checkpoints/{segment(id)}"),
                                      what=f"get checkpoint {id} of {self.name}")
        return Checkpoint.from_json(response.json())

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
